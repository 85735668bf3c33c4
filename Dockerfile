# Multi-stage build of the regent binary into a minimal non-root image.
# Untested here: the machines this project is built on have no container
# engine (see README). The build itself is the one `cargo build --release`
# that tests/run.sh's debug build mirrors.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY policies ./policies
COPY benches ./benches
RUN cargo build --release --locked --bin regent \
 && strip target/release/regent

# distroless/cc: glibc and CA certificates, no shell, runs as 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/regent /usr/local/bin/regent
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/regent"]
CMD ["serve"]
