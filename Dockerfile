# Multi-stage build of the regent binary into a minimal non-root image.
# Untested here: the machines this project is built on have no container
# engine (see README). The build itself is the one `cargo build --release`
# that tests/run.sh's debug build mirrors, made profile-guided by default
# (benches/pgo.sh: an instrumented build trained on the default bundle and the
# test fixtures' Gatekeeper bundle under wrk, then the release build with that
# profile; about three times the build time, 10-20 % more throughput:
# benches/RESULTS.md). `--build-arg PGO=0` builds the plain release binary.
FROM rust:1.95-bookworm AS build
ARG PGO=1
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
COPY src ./src
COPY core ./core
COPY policies ./policies
COPY benches ./benches
COPY tests/fixtures ./tests/fixtures
RUN if [ "$PGO" = 1 ]; then \
      apt-get update -q && apt-get install -y -q wrk python3 curl >/dev/null \
      && benches/pgo.sh && cp target/pgo/release/regent target/regent; \
    else \
      cargo build --release --locked --bin regent && cp target/release/regent target/regent; \
    fi \
 && strip target/regent

# distroless/cc: glibc and CA certificates, no shell, runs as 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/regent /usr/local/bin/regent
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/regent"]
CMD ["serve"]
