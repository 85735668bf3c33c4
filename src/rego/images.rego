# METADATA
# title: Regent image reference helpers
# description: |
#   Parts of a container image reference. Reserved: built into the regent
#   binary. Import the functions you use, e.g.
#   `import data.regent.lib.images.image_tag`.
package regent.lib.images

import rego.v1

# The repository part of an image reference ("registry.example.com/team/app").
image_repository(image) := repo if {
	not contains(image, "@")
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	repo := trim_suffix(image, concat("", [":", split(last, ":")[1]]))
}

image_repository(image) := split(image, "@")[0] if contains(image, "@")

image_repository(image) := image if {
	not contains(image, "@")
	parts := split(image, "/")
	not contains(parts[count(parts) - 1], ":")
}

# The tag of an image reference, or "" when it has none. A digest-pinned image
# ("app@sha256:...") reports its digest as "@sha256:...".
image_tag(image) := concat("", ["@", split(image, "@")[1]]) if contains(image, "@")

# The last path segment's part after ":", or "" when it has none (the ""
# appended by array.concat): one body, not one per case, as this runs for
# every container of every request.
image_tag(image) := tag if {
	not contains(image, "@")
	parts := split(image, "/")
	segments := split(parts[count(parts) - 1], ":")
	tag := array.concat(segments, [""])[1]
}

# The registry host of an image reference; Docker Hub when the first path part
# is not a host name (no "." or ":" and not "localhost").
image_registry(image) := registry if {
	parts := split(image, "/")
	count(parts) > 1
	is_host(parts[0])
	registry := parts[0]
}

image_registry(image) := "docker.io" if {
	parts := split(image, "/")
	count(parts) == 1
}

image_registry(image) := "docker.io" if {
	parts := split(image, "/")
	count(parts) > 1
	not is_host(parts[0])
}

is_host(part) if contains(part, ".")

is_host(part) if contains(part, ":")

is_host(part) if part == "localhost"
