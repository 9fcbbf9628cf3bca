# shellcheck shell=bash
# Shared by profile.sh, ab.sh, tls.sh and testssl.sh (sourced, not run): the port layout, the upstream nginx (and a
# second one as a healthy shadow), and shadowtap's config, the same way in both tools.
# The caller sets HERE (this directory), RUN_DIR (its temporary directory), LOADGEN_CPU and
# an array PIDS (processes to stop on exit).

# Ports from a base: BASE+81 upstream, +82 shadow, +90 shadowtap, +1901 its admin port, and
# the upstreams' h2c servers on +100/+101 (run.sh's upstream config listens there too).
# shellcheck disable=SC2034 # the layout is read by the sourcing script
set_ports() { # BASE
  [[ "$1" =~ ^[0-9]+$ && "$1" -ge 1024 && "$1" -le 60000 ]] || { echo "--ports: 1024..60000" >&2; exit 2; }
  UPSTREAM_PORT=$(($1 + 81)); SHADOW_PORT=$(($1 + 82)); H2_PORT=$(($1 + 100))
  SHADOW_H2_PORT=$(($1 + 101)); LISTEN_PORT=$(($1 + 90)); ADMIN_PORT=$(($1 + 1901))
}

# Sets SHADOWTAP_BIN: as given (it must be executable), else target/release/shadowtap of the
# tree at ROOT, built first.
shadowtap_binary() { # ROOT
  if [[ -z "${SHADOWTAP_BIN:-}" ]]; then
    echo "== building target/release/shadowtap"
    (cd "$1" && cargo build --release --locked --quiet)
    SHADOWTAP_BIN="${CARGO_TARGET_DIR:-$1/target}/release/shadowtap"
  fi
  [[ -x "$SHADOWTAP_BIN" ]] || { echo "SHADOWTAP_BIN=$SHADOWTAP_BIN is not executable" >&2; exit 1; }
}

wait_port() { # PORT: up to 30 s
  local _; for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing on port $1" >&2; return 1
}

# Starts an upstream nginx in DIR (RUN_DIR itself, or a directory of its own for the shadow,
# which gets the same bodies) on PORT, pinned to LOADGEN_CPU. The bodies are written into
# RUN_DIR/www on first use.
start_upstream() { # DIR PORT H2_PORT
  local f
  if [[ ! -e "$RUN_DIR/www/body-64" ]]; then
    mkdir -p "$RUN_DIR/www" "$RUN_DIR/tmp"
    head -c 64 /dev/zero | tr '\0' 'x' >"$RUN_DIR/www/body-64"
    head -c 16384 /dev/zero | tr '\0' 'y' >"$RUN_DIR/www/body-16k"
    # The JSON answer of run.sh's json scenario (--path /json).
    python3 "$HERE/harness.py" make-json "$RUN_DIR/www/body-16k.json" 16384
  fi
  if [[ "$1" != "$RUN_DIR" ]]; then
    # -p: the same mtime, so the shadow's ETag and Last-Modified equal the primary's (the
    # comparison's work, and so profile.sh's counts, must not depend on when the copy ran).
    mkdir -p "$1/www" "$1/tmp"; cp -p "$RUN_DIR"/www/body-* "$1/www/"; chmod -R 755 "$1"
  fi
  for f in upstream upstream-locations; do
    sed -e "s#@RUN@#$1#g" -e "s#@UPSTREAM_PORT@#$2#g" -e "s#@UPSTREAM_H2_PORT@#$3#g" \
      -e 's#@POST_ANSWER@#{"stored":true}#g' "$HERE/conf/$f.conf.in" >"$1/$f.conf"
  done
  taskset -c "$LOADGEN_CPU" nginx -p "$1" -c "$1/upstream.conf" >"$1/upstream.out" 2>&1 &
  PIDS+=($!); wait_port "$2"
}

# shadowtap's config for the ports above: the live path alone, or (MIRROR=1) mirroring
# MIRROR_PERCENT (default every) request to the shadow and comparing.
write_shadowtap_config() { # OUT MIRROR
  local template="$HERE/conf/shadowtap.toml.in"
  (($2)) && template="$HERE/conf/shadowtap-mirror.toml.in"
  sed -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" -e "s#@LISTEN_PORT@#$LISTEN_PORT#g" \
    -e "s#@ADMIN_PORT@#$ADMIN_PORT#g" -e "s#@SHADOW_PORT@#$SHADOW_PORT#g" \
    -e "s#@MIRROR_TIMEOUT@#5s#g" -e "s#^percent = 100\$#percent = ${MIRROR_PERCENT:-100}#" \
    "$template" >"$1"
}

# A throw-away CA and a P-256 leaf for localhost and 127.0.0.1 signed by it, in DIR: ca.pem,
# cert.pem (the leaf), key.pem (PKCS#8). The same files serve shadowtap, nginx and the https
# shadow, so every contender's handshake signs with the same key type. The leaf names a CRL
# location, as every CA-issued certificate does (nothing fetches it here): testssl.sh rates a
# certificate without one HIGH, a finding about the certificate, not about the listener.
make_test_certificate() { # DIR
  mkdir -p "$1"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=shadowtap loadtests CA (test only)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -keyout "$1/ca.key" -out "$1/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$1/key.pem" -out "$1/leaf.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\ncrlDistributionPoints=URI:http://localhost/shadowtap-test-ca.crl\n' >"$1/leaf.ext"
  openssl x509 -req -in "$1/leaf.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" -CAcreateserial \
    -days 365 -extfile "$1/leaf.ext" -out "$1/cert.pem" 2>/dev/null
  rm -f "$1/leaf.csr" "$1/leaf.ext" "$1/ca.srl"
  chmod 644 "$1"/*.pem
}

# Makes the listener of a shadowtap config from conf/ (one listener, then [admin]) terminate
# TLS with the certificate make_test_certificate made in DIR.
add_listener_tls() { # TOML DIR
  sed -i "/^\\[admin\\]\$/i [listeners.tls]\\ncert = \"$2/cert.pem\"\\nkey = \"$2/key.pem\"\\n" "$1"
}

# utime stime cutime cstime of a process and its direct children (nginx's worker), summed.
cpu_ticks() { # PID
  local pid total=(0 0 0 0) a b c d
  for pid in "$1" $(cat "/proc/$1/task/"*/children 2>/dev/null); do
    read -r a b c d < <(awk '{print $14, $15, $16, $17}' "/proc/$pid/stat")
    total=($((total[0] + a)) $((total[1] + b)) $((total[2] + c)) $((total[3] + d)))
  done
  echo "${total[@]}"
}

# Every process a script starts goes into PIDS; on exit (or Ctrl-C) each is sent SIGTERM,
# given 10 s, then killed, by its own PID.
stop_started_on_exit() {
  PIDS=()
  trap stop_started EXIT
  trap 'exit 130' INT TERM
}

stop_started() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  exit "$rc"
}
