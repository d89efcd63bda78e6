# Unpacks Debian packages of another suite into a private root, without touching the system's apt
# sources: a private sources list, list directory and cache under $CACHE/apt-SUITE.
# Usage: debroot SUITE ROOT PACKAGE...   (returns non-zero if a download fails)
debroot() {
  local suite="$1" root="$2"
  shift 2
  local apt="$CACHE/apt-$suite"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" >"$apt/sources.list"
  local opts=(
    -o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "Debug::NoLocking=1"
    -o "APT::Architecture=amd64" -o "APT::Architectures::=amd64" -o "APT::Sandbox::User=root"
  )
  timeout 300 apt-get "${opts[@]}" update -qq || return 1
  rm -f "$apt/debs"/*.deb
  (cd "$apt/debs" && timeout 300 apt-get "${opts[@]}" download "$@") || return 1
  rm -rf "$root"
  mkdir -p "$root"
  local deb
  for deb in "$apt/debs"/*.deb; do
    dpkg -x "$deb" "$root" || return 1
  done
}

# Points an ELF binary at ROOT's own loader and libraries.
patch_root_binary() { # ROOT BINARY
  command -v patchelf >/dev/null || apt_install patchelf || return 1
  patchelf --set-interpreter "$1/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
    --force-rpath --set-rpath "$1/usr/lib/x86_64-linux-gnu:$1/lib/x86_64-linux-gnu" "$2"
}
