#!/usr/bin/env bash
# Builds the llm-otel OpenTelemetry Collector (otelcol-llm) from
# observability/collector/builder-config.yaml with the pinned Collector Builder,
# once, into a cache directory keyed by the collector version and the manifest hash:
#
#   ${LLM_OTEL_CACHE:-$HOME/.cache/llm-otel}/otelcol-<version>-<sha256(manifest)[:12]>/otelcol-llm
#
# A cached binary is reused; editing the manifest yields a new cache entry.
# llm_otel/tools/_stack.py computes the same path, so `llm-otel stack up` finds the binary.
#
# Usage:
#   scripts/build-collector.sh               build if needed, report the path on stderr
#   scripts/build-collector.sh --print-path  build if needed, print only the path on stdout
#
# LLM_OTEL_COLLECTOR_MANIFEST names another manifest (`llm-otel stack build` passes the one an
# installed wheel carries, llm_otel/observability/collector/builder-config.yaml).
#
# Needs: Go (the version the collector release requires) and access to the Go module proxy.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
manifest="${LLM_OTEL_COLLECTOR_MANIFEST:-$repo_root/observability/collector/builder-config.yaml}"
binary_name="otelcol-llm"

print_path=0
case "${1:-}" in
    --print-path) print_path=1 ;;
    "") ;;
    -h | --help)
        sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "build-collector.sh: unknown argument: $1 (try --help)" >&2
        exit 2
        ;;
esac

# Everything except the final path goes to stderr, so --print-path output is clean.
exec 3>&1 1>&2

log() { echo "build-collector: $*"; }

# The collector version is dist.version in the manifest; the builder is pinned to it.
version="$(awk '/^dist:/ {in_dist=1; next} /^[^[:space:]#]/ {in_dist=0} in_dist && $1 == "version:" {gsub(/"/, "", $2); print $2; exit}' "$manifest")"
if [[ -z "$version" ]]; then
    log "could not read dist.version from $manifest"
    exit 1
fi

if command -v sha256sum >/dev/null 2>&1; then
    manifest_sha="$(sha256sum "$manifest" | cut -c1-12)"
else
    manifest_sha="$(shasum -a 256 "$manifest" | cut -c1-12)"
fi

cache_root="${LLM_OTEL_CACHE:-$HOME/.cache/llm-otel}"
target_dir="$cache_root/otelcol-$version-$manifest_sha"
target="$target_dir/$binary_name"

finish() {
    log "collector binary: $target"
    if [[ "$print_path" == 1 ]]; then
        echo "$target" >&3
    fi
    exit 0
}

if [[ -x "$target" ]]; then
    finish
fi

if ! command -v go >/dev/null 2>&1; then
    log "Go is required to build the collector (https://go.dev/dl/); not found on PATH."
    exit 1
fi

mkdir -p "$cache_root"

# Serialise concurrent builds of the same manifest (parallel test runs, CI matrix).
lock_file="$cache_root/.otelcol-$version-$manifest_sha.lock"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$lock_file"
    flock 9
    if [[ -x "$target" ]]; then
        finish
    fi
fi

# The builder, pinned to the collector release. Reuse one on PATH only if it is that version.
builder=""
if command -v builder >/dev/null 2>&1 && builder version 2>/dev/null | grep -q "v$version\$"; then
    builder="$(command -v builder)"
else
    tools_dir="$cache_root/ocb-$version"
    builder="$tools_dir/builder"
    if [[ ! -x "$builder" ]]; then
        log "installing the Collector Builder v$version into $tools_dir"
        GOBIN="$tools_dir" go install "go.opentelemetry.io/collector/cmd/builder@v$version"
    fi
fi

work_dir="$(mktemp -d "$cache_root/.build-$version-$manifest_sha.XXXXXX")"
cleanup() { rm -rf "$work_dir"; }
trap cleanup EXIT

# output_path in the manifest is relative, so the sources land inside the scratch dir.
cp "$manifest" "$work_dir/builder-config.yaml"
log "building $binary_name $version (manifest $manifest_sha); the first build takes a few minutes"
start_s=$SECONDS
(
    cd "$work_dir"
    # The builder and go build create scratch directories; keep them inside work_dir.
    mkdir -p tmp
    export TMPDIR="$work_dir/tmp"
    # Build outside any VCS checkout; -buildvcs=false keeps `go build` quiet if one is found.
    case " ${GOFLAGS:-} " in
        *" -buildvcs="*) ;;
        *) export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false" ;;
    esac
    "$builder" --config builder-config.yaml
)
built="$(find "$work_dir" -path "$work_dir/tmp" -prune -o -type f -name "$binary_name" -perm -u+x -print | head -n 1)"
if [[ -z "$built" ]]; then
    log "the builder finished but produced no $binary_name under $work_dir"
    exit 1
fi

# Publish atomically: the final directory only ever holds a complete binary.
staging="$work_dir/publish"
mkdir -p "$staging"
mv "$built" "$staging/$binary_name"
cp "$manifest" "$staging/builder-config.yaml"
rm -rf "$target_dir"
mv "$staging" "$target_dir"
log "built in $((SECONDS - start_s))s"
"$target" --version
finish
