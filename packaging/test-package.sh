#!/usr/bin/env bash
# Builds the Debian package and tests it as an operator would use it:
#   1. the .deb: contents (dpkg-deb -c) and control fields (dpkg-deb -I);
#   2. dpkg -i (replacing Debian's prometheus-pushgateway when it is installed): the files,
#      the conffile, the pushgateway system user, the state directory, the enabled unit,
#      `systemd-analyze verify` of the installed unit;
#   3. the installed /usr/bin/pushgateway started as the pushgateway user with the ARGS of
#      /etc/default/pushgateway (listening on 127.0.0.1:<free port>): pushes with curl,
#      `pgw push` and `pgw run`, scrapes, build info, a restart that keeps the groups in
#      /var/lib/pushgateway, and packaging/migrate-from-official.py copying the groups of a
#      running official gateway (when /usr/bin/prometheus-pushgateway exists);
#   4. dpkg --purge.
#
#   packaging/test-package.sh            # build, then test
#   PGW_DEB=path.deb packaging/test-package.sh   # test an existing package
#
# Where the package is installed (PGW_PKG_TEST_MODE):
#   auto     (default) overlay when possible, else scratch.
#   overlay  dpkg -i inside a private mount namespace, in a copy-on-write overlay of this
#            machine's root (unshare -m, overlayfs, chroot): a real installation, including
#            the replacement of an installed prometheus-pushgateway, that leaves the machine
#            untouched. Needs root and overlayfs.
#   host     dpkg -i on this machine itself, purged at the end. Only for throwaway machines:
#            it REMOVES an installed prometheus-pushgateway (other tests use that binary).
#   scratch  dpkg -x into a temporary directory (no root needed): files, unit and the binary
#            from the scratch root; no dpkg -i, no user.
# Everything listens on 127.0.0.1 only; every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SELF="$ROOT/packaging/test-package.sh"
T0=$(date +%s)

say() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf '   ok: %s\n' "$*"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_ready URL SECONDS
wait_ready() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------------------------------
# The checks on an installed package. Runs as root on "/" (host mode) or inside the overlay
# chroot (overlay mode): `test-package.sh --installed-checks DEB`.
installed_checks() {
  local deb=$1 port
  # Globals, for the EXIT trap.
  work=$(mktemp -d /tmp/pgw-pkgtest.XXXXXX) pid= ofpid=
  cleanup_checks() {
    [ -z "${pid:-}" ] || kill "$pid" 2>/dev/null || true
    [ -z "${ofpid:-}" ] || kill "$ofpid" 2>/dev/null || true
    rm -rf "${work:-/nonexistent}"
  }
  trap cleanup_checks EXIT
  export DEBIAN_FRONTEND=noninteractive

  # A running official gateway with some groups, to migrate from after the replacement.
  local official=
  if [ -x /usr/bin/prometheus-pushgateway ]; then
    official=$(free_port)
    # --persistence.file= : Debian's build persists to /var/lib/prometheus by default.
    /usr/bin/prometheus-pushgateway --web.listen-address="127.0.0.1:$official" \
      --persistence.file= >"$work/official.log" 2>&1 &
    ofpid=$!
    wait_ready "http://127.0.0.1:$official/-/ready" 10 || fail "official gateway did not start"
    migration_fixture "http://127.0.0.1:$official"
    # As docs/install.md says: save the groups before the package is replaced.
    curl -fsS "http://127.0.0.1:$official/api/v1/metrics" >"$work/groups.json"
  fi

  say "dpkg -i $(basename "$deb")"
  local replaced=0
  dpkg -s prometheus-pushgateway >/dev/null 2>&1 && replaced=1
  dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
  dpkg -s pushgateway | grep -q '^Status: install ok installed' || fail "not installed"
  ok "installed"
  if [ "$replaced" = 1 ]; then
    if dpkg -s prometheus-pushgateway 2>/dev/null | grep -q '^Status: install ok installed'; then
      fail "prometheus-pushgateway still installed"
    fi
    grep -q 'prometheus-pushgateway' "$work/dpkg.log" || fail "dpkg did not mention the replacement"
    ok "replaced prometheus-pushgateway ($(grep -m1 -i 'prometheus-pushgateway' "$work/dpkg.log"))"
  fi

  say "files"
  local f
  for f in /usr/bin/pushgateway /usr/bin/pgw /usr/lib/systemd/system/pushgateway.service \
    /etc/default/pushgateway /usr/share/man/man1/pushgateway.1.gz /usr/share/man/man1/pgw.1.gz \
    /usr/share/man/man1/pgw-run.1.gz /usr/share/bash-completion/completions/pgw \
    /usr/share/zsh/vendor-completions/_pgw /usr/share/fish/vendor_completions.d/pgw.fish \
    /usr/share/doc/pushgateway/install.md /usr/share/doc/pushgateway/examples/prometheus.yml \
    /usr/share/pushgateway/migrate-from-official.py; do
    [ -e "$f" ] || fail "missing $f"
  done
  ok "binaries, unit, defaults, man pages, completions, docs"
  dpkg-query -W -f='${Conffiles}\n' pushgateway | grep -q '/etc/default/pushgateway' ||
    fail "/etc/default/pushgateway is not a conffile"
  ok "/etc/default/pushgateway is a conffile"
  zcat /usr/share/man/man1/pushgateway.1.gz | grep -q 'persistence\\&\?\.file\|persistence.file' ||
    fail "man page lacks --persistence.file"
  ok "man page documents the flags"
  bash -c 'source /usr/share/bash-completion/completions/pgw && complete -p pgw' >/dev/null ||
    fail "bash completion does not load"
  ok "bash completion loads"

  say "user and state directory"
  local pw uid home shell
  pw=$(getent passwd pushgateway) || fail "no pushgateway user"
  IFS=: read -r _ _ uid _ _ home shell <<<"$pw"
  [ "$uid" -lt 1000 ] || fail "pushgateway is not a system user (uid $uid)"
  [ "$home" = /var/lib/pushgateway ] || fail "home is $home"
  case "$shell" in */nologin | */false) ;; *) fail "login shell $shell" ;; esac
  getent group pushgateway >/dev/null || fail "no pushgateway group"
  [ "$(stat -c '%U:%G %a' /var/lib/pushgateway)" = "pushgateway:pushgateway 750" ] ||
    fail "/var/lib/pushgateway is $(stat -c '%U:%G %a' /var/lib/pushgateway)"
  ok "system user uid $uid, home $home, shell $shell; /var/lib/pushgateway pushgateway:pushgateway 750"

  say "systemd unit"
  [ -L /etc/systemd/system/multi-user.target.wants/pushgateway.service ] ||
    fail "unit not enabled"
  ok "enabled (multi-user.target.wants)"
  verify_unit /usr/lib/systemd/system/pushgateway.service
  check_unit_settings /usr/lib/systemd/system/pushgateway.service

  say "run the installed binary with the ARGS of /etc/default/pushgateway"
  local ARGS args=()
  # shellcheck disable=SC1091
  ARGS=$(ARGS=; . /etc/default/pushgateway; echo "$ARGS")
  [ "$ARGS" = "--persistence.file=/var/lib/pushgateway/metrics.store" ] || fail "ARGS=$ARGS"
  for f in $ARGS; do
    case "$f" in --web.listen-address=*) ;; *) args+=("$f") ;; esac
  done
  port=$(free_port)
  local url="http://127.0.0.1:$port"
  start_installed() {
    (cd /var/lib/pushgateway && exec setpriv --reuid=pushgateway --regid=pushgateway --init-groups \
      /usr/bin/pushgateway "${args[@]}" --web.listen-address="127.0.0.1:$port") \
      >>"$work/gateway.log" 2>&1 &
    pid=$!
    wait_ready "$url/-/ready" 15 || { cat "$work/gateway.log"; fail "gateway did not start"; }
  }
  start_installed
  ok "listening on $url as $(ps -o user= -p "$pid")"
  echo 'pkgtest_curl 42' | curl -fsS --data-binary @- "$url/metrics/job/pkgtest/instance/curl"
  printf '# TYPE pkgtest_pgw gauge\npkgtest_pgw 7\n' >"$work/m.prom"
  /usr/bin/pgw push --gateway "$url" --job pkgtest --label instance=pgw "$work/m.prom" ||
    fail "pgw push"
  /usr/bin/pgw run --gateway "$url" --job pkgtest_run -- true || fail "pgw run"
  curl -fsS "$url/metrics" >"$work/scrape"
  grep -q '^pkgtest_curl{instance="curl",job="pkgtest"} 42$' "$work/scrape" || fail "curl push not scraped"
  grep -q '^pkgtest_pgw{instance="pgw",job="pkgtest"} 7$' "$work/scrape" || fail "pgw push not scraped"
  grep -q '^pgw_job_success{instance="",job="pkgtest_run"} 1$' "$work/scrape" || fail "pgw run not scraped"
  ok "pushes with curl, pgw push and pgw run are scraped"
  check_build_info "$url" /usr/bin/pushgateway /usr/bin/pgw
  [ "$(stat -c %U /var/lib/pushgateway/metrics.store)" = pushgateway ] ||
    fail "metrics.store not owned by pushgateway"
  ok "/var/lib/pushgateway/metrics.store owned by pushgateway"

  kill -TERM "$pid"
  wait_exit "$pid" 20 || fail "gateway did not stop on SIGTERM"
  start_installed
  curl -fsS "$url/metrics" >"$work/scrape2"
  grep -q '^pkgtest_curl{instance="curl",job="pkgtest"} 42$' "$work/scrape2" || fail "lost after restart"
  grep -q '^pkgtest_pgw{instance="pgw",job="pkgtest"} 7$' "$work/scrape2" || fail "lost after restart"
  ok "groups survive a restart (persistence under /var/lib/pushgateway)"

  if [ -n "$official" ]; then
    say "migrate the groups of the official gateway"
    # A group pushed to the new gateway before the migration is newer: it must be kept.
    echo 'mig_plain 99' | curl -fsS --data-binary @- "$url/metrics/job/mig_plain"
    python3 /usr/share/pushgateway/migrate-from-official.py "$work/groups.json" "$url" \
      2>"$work/migrate.log" || { cat "$work/migrate.log"; fail "migration from the saved groups"; }
    grep -q 'skipped 1 the destination already has' "$work/migrate.log" || fail "$(cat "$work/migrate.log")"
    curl -fsS "$url/metrics" | grep -qx 'mig_plain{instance="",job="mig_plain"} 99' ||
      fail "the newer group was overwritten"
    ok "$(cat "$work/migrate.log")"
    python3 /usr/share/pushgateway/migrate-from-official.py --overwrite \
      "http://127.0.0.1:$official" "$url" || fail "migration over HTTP"
    compare_migrated "http://127.0.0.1:$official" "$url"
  fi

  kill -TERM "$pid"
  wait_exit "$pid" 20 || fail "gateway did not stop"
  pid=

  say "dpkg --purge pushgateway"
  dpkg --purge pushgateway >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge"; }
  for f in /usr/bin/pushgateway /usr/bin/pgw /usr/lib/systemd/system/pushgateway.service \
    /etc/default/pushgateway /var/lib/pushgateway \
    /etc/systemd/system/multi-user.target.wants/pushgateway.service; do
    [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f left after purge"
  done
  ok "binaries, unit, conffile, enablement and state removed (the system user is kept)"
}

wait_exit() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  return 1
}

# verify_unit FILE [OPTION]: `systemd-analyze verify` must accept the unit without a warning.
verify_unit() {
  local unit=$1 out
  command -v systemd-analyze >/dev/null 2>&1 || {
    echo "   systemd-analyze not found: only the settings are checked"
    return 0
  }
  if out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify ${2:+"$2"} "$unit" 2>&1) &&
    [ -z "$out" ]; then
    ok "systemd-analyze verify ${2:+$2 }$unit: clean"
  else
    echo "$out"
    fail "systemd-analyze verify $unit"
  fi
}

# check_unit_settings FILE: the settings the package promises.
check_unit_settings() {
  local unit=$1 key
  for key in 'User=pushgateway' 'Restart=on-failure' 'EnvironmentFile=-/etc/default/pushgateway' \
    'ExecStart=/usr/bin/pushgateway $ARGS' 'StateDirectory=pushgateway' 'NoNewPrivileges=yes' \
    'ProtectSystem=strict' 'ReadWritePaths=/var/lib/pushgateway' 'PrivateTmp=yes' \
    'PrivateDevices=yes' 'ProtectHome=yes' 'ProtectKernelTunables=yes' 'ProtectKernelModules=yes' \
    'ProtectControlGroups=yes' 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
    'RestrictNamespaces=yes' 'LockPersonality=yes' 'MemoryDenyWriteExecute=yes' \
    'SystemCallFilter=@system-service' 'CapabilityBoundingSet=' 'WantedBy=multi-user.target'; do
    grep -qxF "$key" "$unit" || fail "unit lacks '$key'"
  done
  ok "unit settings: user, restart, defaults file, state directory, hardening"
}

# check_build_info URL PUSHGATEWAY PGW: --version, pushgateway_build_info, /api/v1/status.
check_build_info() {
  local url=$1 v
  v=$("$2" --version)
  printf '%s\n' "$v" | head -1 | grep -Eq '^pushgateway, version [0-9][^ ]* \(branch: [^,]+, revision: [^)]+\)$' ||
    fail "--version: $v"
  printf '%s\n' "$v" | grep -q '^  rustc version:    rustc [0-9]' || fail "--version lacks rustc: $v"
  printf '%s\n' "$v" | grep -Eq '^  build date:       [0-9]{8}-[0-9]{2}:[0-9]{2}:[0-9]{2}$' ||
    fail "--version build date: $v"
  "$3" --version | head -1 | grep -Eq '^pgw [0-9]' || fail "pgw --version"
  curl -fsS "$url/metrics" | grep '^pushgateway_build_info{' | grep -q 'goversion="rustc ' ||
    fail "pushgateway_build_info lacks the rustc version"
  curl -fsS "$url/api/v1/status" | python3 -c '
import json, sys
b = json.load(sys.stdin)["data"]["build_information"]
assert set(b) >= {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}, b
assert b["goVersion"].startswith("rustc "), b
assert b["buildDate"] != "unknown", b
' || fail "/api/v1/status build_information"
  ok "build info from the build: $(printf '%s\n' "$v" | head -1)"
}

# Groups on the official gateway that exercise every type, HELP escapes and odd keys.
migration_fixture() {
  local u=$1
  curl -fsS --data-binary @- "$u/metrics/job/mig/instance/i1/path@base64/L3Zhci90bXA" <<'EOF'
# HELP mig_requests_total Requests "served"\nsecond line \\ backslash
# TYPE mig_requests_total counter
mig_requests_total{code="200"} 3
mig_requests_total{code="500"} 1e+30
# TYPE mig_temp gauge
mig_temp NaN
# TYPE mig_latency histogram
mig_latency_bucket{le="0.1"} 1
mig_latency_bucket{le="1"} 2
mig_latency_bucket{le="+Inf"} 3
mig_latency_sum 1.5
mig_latency_count 3
# TYPE mig_size summary
mig_size{quantile="0.5"} 10
mig_size{quantile="0.9"} 20
mig_size_sum 100
mig_size_count 7
mig_untyped{a="x\"y\\z\nw"} -Inf
EOF
  echo 'mig_plain 1' | curl -fsS --data-binary @- "$u/metrics/job/mig_plain"
  echo 'mig_slash 2' | curl -fsS --data-binary @- "$u/metrics/job@base64/am9iL3dpdGgvc2xhc2g="
  echo 'mig_empty 3' | curl -fsS --data-binary @- "$u/metrics/job/mig_empty/shard@base64/="
}

# compare_migrated OLD NEW: every pushed series of OLD is on NEW with the same value.
compare_migrated() {
  python3 - "$1" "$2" <<'EOF' || fail "migrated groups differ"
import json, math, sys, urllib.request

def scrape(base):
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    series, helps, types = {}, {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, h = line[7:].partition(" ")
            helps[name] = h
        elif line.startswith("# TYPE "):
            name, _, t = line[7:].partition(" ")
            types[name] = t
        elif line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            series[key] = value
    return series, helps, types

def own(key):
    name = key.split("{")[0]
    return (name.startswith(("pushgateway_", "process_", "go_", "push_time_seconds",
                             "push_failure_time_seconds")))

old, old_help, old_type = scrape(sys.argv[1])
new, new_help, new_type = scrape(sys.argv[2])
wanted = {k: v for k, v in old.items() if not own(k)}
assert len(wanted) >= 15, wanted
bad = []
for k, v in wanted.items():
    got = new.get(k)
    same = got == v or (got is not None and math.isnan(float(got)) and math.isnan(float(v)))
    if not same:
        bad.append((k, v, got))
for name in {k.split("{")[0] for k in wanted}:
    fam = name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in old_type:
            fam = name[: -len(suffix)]
    if old_type.get(fam) != new_type.get(fam) or old_help.get(fam) != new_help.get(fam):
        bad.append((fam, (old_type.get(fam), old_help.get(fam)), (new_type.get(fam), new_help.get(fam))))
for b in bad:
    print("differs:", b)
if bad:
    sys.exit(1)
groups = json.load(urllib.request.urlopen(sys.argv[2] + "/api/v1/metrics", timeout=10))["data"]
keys = sorted(tuple(sorted(g["labels"].items())) for g in groups)
assert (("job", "job/with/slash"),) in keys, keys
print(f"   ok: {len(wanted)} series of the official gateway are on ours with the same values, types and HELP")
EOF
}

# ---------------------------------------------------------------------------------------
# Overlay mode: a private mount namespace with a copy-on-write view of "/" as the root.
overlay_enter() {
  # Runs inside `unshare -m`: nothing mounted here is visible outside.
  local deb=$1 base=$3
  mount --make-rprivate /
  mount -t tmpfs -o size=2g tmpfs "$base"
  mkdir -p "$base/upper" "$base/work" "$base/root"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
  mount -t proc proc "$base/root/proc"
  mount --rbind /dev "$base/root/dev"
  mount --rbind /sys "$base/root/sys"
  mount -t tmpfs tmpfs "$base/root/tmp"
  mount -t tmpfs tmpfs "$base/root/run"
  mkdir -p "$base/root/tmp/pkgtest"
  cp "$deb" "$SELF" "$base/root/tmp/pkgtest/"
  # As in any chroot: maintainer scripts must not start services (there is no systemd here).
  printf '#!/bin/sh\nexit 101\n' >"$base/root/usr/sbin/policy-rc.d"
  chmod 755 "$base/root/usr/sbin/policy-rc.d"
  chroot "$base/root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 bash /tmp/pkgtest/test-package.sh --installed-checks \
    "/tmp/pkgtest/$(basename "$deb")"
}

overlay_possible() {
  [ "$(id -u)" = 0 ] || return 1
  command -v unshare >/dev/null 2>&1 || return 1
  local d rc=0
  d=$(mktemp -d /tmp/pgw-overlay-probe.XXXXXX)
  unshare -m sh -c 'mount -t tmpfs tmpfs "$1" && mkdir "$1/u" "$1/w" "$1/m" &&
    mount -t overlay overlay -o "lowerdir=/,upperdir=$1/u,workdir=$1/w" "$1/m"' sh "$d" \
    2>/dev/null || rc=1
  rmdir "$d" 2>/dev/null || true
  return "$rc"
}

# ---------------------------------------------------------------------------------------
# Scratch mode: the package unpacked into a temporary directory, run as the current user.
scratch_checks() {
  local deb=$1 port
  # Globals, for the EXIT trap.
  r=$(mktemp -d /tmp/pgw-scratch.XXXXXX) pid=
  trap '[ -z "${pid:-}" ] || kill "$pid" 2>/dev/null || true; rm -rf "${r:-/nonexistent}"' EXIT
  say "dpkg -x into $r"
  dpkg-deb -x "$deb" "$r"
  local f
  for f in usr/bin/pushgateway usr/bin/pgw usr/lib/systemd/system/pushgateway.service \
    etc/default/pushgateway usr/share/man/man1/pushgateway.1.gz usr/share/man/man1/pgw.1.gz; do
    [ -e "$r/$f" ] || fail "missing $f"
  done
  ok "files"
  say "systemd unit"
  # Not installed: verify a copy whose ExecStart points into the scratch root (the man page
  # named in Documentation= is not installed either).
  mkdir -p "$r/verify"
  sed "s|/usr/bin/pushgateway|$r/usr/bin/pushgateway|" "$r/usr/lib/systemd/system/pushgateway.service" \
    >"$r/verify/pushgateway.service"
  verify_unit "$r/verify/pushgateway.service" --man=no
  check_unit_settings "$r/usr/lib/systemd/system/pushgateway.service"
  say "run the unpacked binary with the ARGS of etc/default/pushgateway"
  local ARGS args=()
  ARGS=$(ARGS=; . "$r/etc/default/pushgateway"; echo "$ARGS")
  for f in $ARGS; do
    case "$f" in
      --web.listen-address=*) ;;
      *) args+=("${f//\/var\/lib\/pushgateway/$r/var/lib/pushgateway}") ;;
    esac
  done
  mkdir -p "$r/var/lib/pushgateway"
  port=$(free_port)
  local url="http://127.0.0.1:$port"
  "$r/usr/bin/pushgateway" "${args[@]}" --web.listen-address="127.0.0.1:$port" >"$r/log" 2>&1 &
  pid=$!
  wait_ready "$url/-/ready" 15 || { cat "$r/log"; fail "gateway did not start"; }
  echo 'pkgtest_curl 42' | curl -fsS --data-binary @- "$url/metrics/job/pkgtest"
  echo 'pkgtest_pgw 7' | "$r/usr/bin/pgw" push --gateway "$url" --job pkgtest --label instance=pgw -
  curl -fsS "$url/metrics" | grep -q '^pkgtest_pgw{instance="pgw",job="pkgtest"} 7$' || fail "scrape"
  check_build_info "$url" "$r/usr/bin/pushgateway" "$r/usr/bin/pgw"
  kill -TERM "$pid"
  wait_exit "$pid" 20 || fail "no exit"
  [ -s "$r/var/lib/pushgateway/metrics.store" ] || fail "no metrics.store"
  ok "push, scrape, persistence file under the scratch root"
}

# ---------------------------------------------------------------------------------------
build_deb() {
  local target=${CARGO_TARGET_DIR:-$ROOT/target}
  command -v cargo-deb >/dev/null 2>&1 || fail "cargo-deb not found: cargo install cargo-deb --locked"
  # The whole workspace, as test.sh builds it: the same features, so nothing is rebuilt there.
  say "cargo build --release --workspace" >&2
  (cd "$ROOT" && cargo build --release --locked --workspace) >&2
  say "man pages and completions (xtask dist-assets)" >&2
  rm -rf "$target/release/dist-assets"
  "$target/release/xtask" dist-assets "$target/release/dist-assets" >/dev/null
  say "cargo deb -p pushgateway --no-build" >&2
  (cd "$ROOT" && cargo deb -p pushgateway --no-build --strip) >&2
  ls -t "$target"/debian/pushgateway_*.deb | head -1
}

check_deb() {
  local deb=$1 listing control
  say "package contents (dpkg-deb -c)"
  listing=$(dpkg-deb -c "$deb" | awk '{print $6}')
  local f
  for f in ./usr/bin/pushgateway ./usr/bin/pgw ./usr/lib/systemd/system/pushgateway.service \
    ./etc/default/pushgateway ./usr/share/man/man1/pushgateway.1.gz ./usr/share/man/man1/pgw.1.gz \
    ./usr/share/bash-completion/completions/pgw ./usr/share/zsh/vendor-completions/_pgw \
    ./usr/share/fish/vendor_completions.d/pgw.fish ./usr/share/doc/pushgateway/copyright \
    ./usr/share/doc/pushgateway/install.md ./usr/share/doc/pushgateway/examples/nginx.conf \
    ./usr/share/pushgateway/migrate-from-official.py; do
    grep -qxF "$f" <<<"$listing" || fail "package lacks $f"
  done
  ok "$(wc -l <<<"$listing") entries incl. binaries, unit, defaults, man pages, completions, docs"
  say "control fields (dpkg-deb -I)"
  control=$(dpkg-deb -f "$deb")
  grep -qx 'Package: pushgateway' <<<"$control" || fail "Package"
  grep -q '^Depends: .*adduser' <<<"$control" || fail "Depends lacks adduser"
  for f in Conflicts Replaces Provides; do
    grep -qx "$f: prometheus-pushgateway" <<<"$control" || fail "$f: prometheus-pushgateway"
  done
  dpkg-deb -I "$deb" conffiles | grep -qx '/etc/default/pushgateway' || fail "conffiles"
  dpkg-deb -I "$deb" postinst | grep -q 'adduser --quiet --system --group' || fail "postinst"
  dpkg-deb -I "$deb" postinst | grep -q 'deb-systemd-helper' || fail "postinst lacks unit handling"
  dpkg-deb -I "$deb" postrm | grep -q 'rm -rf /var/lib/pushgateway' || fail "postrm"
  ok "$(grep -E '^(Version|Depends|Conflicts):' <<<"$control" | tr '\n' ' ')"
}

main() {
  if [ "${1:-}" = --installed-checks ]; then
    installed_checks "$2"
    return
  fi
  if [ "${1:-}" = --overlay ]; then
    overlay_enter "$2" -- "$3"
    return
  fi
  local deb=${PGW_DEB:-}
  if [ -z "$deb" ]; then
    deb=$(build_deb)
  fi
  [ -f "$deb" ] || fail "no package at '$deb'"
  deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
  echo "package: $deb ($(du -h "$deb" | cut -f1))"
  check_deb "$deb"

  local mode=${PGW_PKG_TEST_MODE:-auto}
  if [ "$mode" = auto ]; then
    if overlay_possible; then mode=overlay; else mode=scratch; fi
  fi
  case "$mode" in
    overlay)
      say "install into an overlay of / (private mount namespace; the machine is not changed)"
      local base rc=0
      base=$(mktemp -d /tmp/pgw-overlay.XXXXXX)
      unshare -m bash "$SELF" --overlay "$deb" "$base" || rc=$?
      rmdir "$base" 2>/dev/null || true
      [ "$rc" = 0 ] || fail "installed-package checks (overlay mode)"
      ;;
    host)
      [ "$(id -u)" = 0 ] || fail "host mode needs root"
      local created_policy=0
      if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
      fi
      installed_checks "$deb" || { [ $created_policy = 0 ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
      [ $created_policy = 0 ] || rm -f /usr/sbin/policy-rc.d
      ;;
    scratch) scratch_checks "$deb" ;;
    *) fail "unknown PGW_PKG_TEST_MODE=$mode" ;;
  esac
  echo "package test passed ($mode mode) in $(($(date +%s) - T0))s"
}

main "$@"
