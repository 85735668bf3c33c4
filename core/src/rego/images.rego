# METADATA
# title: Regent image reference helpers
# description: |
#   Parts of a container image reference. Reserved: built into the regent
#   binary. Import the functions you use, e.g.
#   `import data.regent.lib.images.image_tag`.
package regent.lib.images

import rego.v1

# Each function is one call of a builtin Regent implements natively (they run
# for every container of every request); src/runtime/tests.rs keeps the
# Rego these replaced and checks that both decide alike. Each is undefined for
# anything but a string.

# The repository part of an image reference ("registry.example.com/team/app"):
# the reference without its tag or digest.
image_repository(image) := regent.images.repository(image)

# The tag of an image reference, or "" when it has none: the last path
# segment's part after ":". A digest-pinned image ("app@sha256:...") reports
# its digest as "@sha256:...".
image_tag(image) := regent.images.tag(image)

# The registry host of an image reference; Docker Hub when the first path part
# is not a host name (no "." or ":" and not "localhost").
image_registry(image) := regent.images.registry(image)

# Whether a reference's first path part is a registry host.
is_host(part) if contains(part, ".")

is_host(part) if contains(part, ":")

is_host(part) if part == "localhost"
