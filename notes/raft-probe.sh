#!/usr/bin/env bash
# raft-probe.sh — reproducible experiment: OpenBao 2.7.2, 3-node Raft cluster, TLS, 127.0.0.1 only.
# Inits node 1 over the HTTP API, unseals leader and followers (retry_join), restarts, probes
# unseal-progress semantics, wrong/malformed keys, sys/leader, health variants, and init with pgp_keys.
# Everything goes to a scratch dir (WORK); all bao processes started here are killed on exit by pid.
#
#   BAO=/work/main/tools/bin/bao PROGRESS_WAIT=300 bash notes/raft-probe.sh
#   -> $WORK/transcript.log (every HTTP request/response with elapsed ms), $WORK/timings.txt
set -uo pipefail

BAO=${BAO:-/work/main/tools/bin/bao}
WORK=${WORK:-$(mktemp -d /tmp/raft-probe.XXXXXX)}
PROGRESS_WAIT=${PROGRESS_WAIT:-300}   # seconds to leave partial unseal progress untouched
LOG=$WORK/transcript.log
TIM=$WORK/timings.txt
CA=$WORK/tls/ca.pem
mkdir -p "$WORK"
: >"$LOG"; : >"$TIM"

declare -A PID API CL
T0=${EPOCHREALTIME/./}
now_us() { echo "${EPOCHREALTIME/./}"; }
el() { echo $(( ($(now_us) - T0) / 1000 )); }           # ms since script start
log() { printf '[%7d] %s\n' "$(el)" "$*" | tee -a "$LOG"; }
timing() { printf '%s\n' "$*" | tee -a "$TIM" >>"$LOG"; }
section() { printf '\n==== %s ====\n' "$*" | tee -a "$LOG"; }

cleanup() {
  for n in "${!PID[@]}"; do
    p=${PID[$n]}
    if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null; fi
  done
  sleep 1
  for n in "${!PID[@]}"; do p=${PID[$n]}; [[ -n $p ]] && kill -KILL "$p" 2>/dev/null; done
  echo "work dir: $WORK" >&2
}
trap cleanup EXIT

# --- HTTP helpers: RC and BODY are set globally ------------------------------------------------
RC=; BODY=
_curl() { # node method path [json] [token]
  local n=$1 m=$2 p=$3 d=${4:-} tok=${5:-}
  : >"$WORK/body"
  local args=(-sS --max-time 10 --cacert "$CA" -o "$WORK/body" -w '%{http_code}' -X "$m")
  [[ -n $d ]] && args+=(-H 'Content-Type: application/json' --data "$d")
  [[ -n $tok ]] && args+=(-H "X-Vault-Token: $tok")
  RC=$(curl "${args[@]}" "https://127.0.0.1:${API[$n]}$p" 2>"$WORK/curl.err") || RC="curl-fail($(tr -d '\n' <"$WORK/curl.err"))"
  BODY=$(tr -d '\n' <"$WORK/body" 2>/dev/null); : >"$WORK/body"
}
req() { _curl "$@"; log "$1 $2 $3${4:+ $4} -> $RC $BODY"; }
qreq() { _curl "$@"; }
status_all() { # label
  local n; log "-- $1"
  for n in n1 n2 n3; do
    [[ -n ${PID[$n]:-} ]] || continue
    req "$n" GET /v1/sys/seal-status
    req "$n" GET /v1/sys/health
  done
}
watch_follower() { # node start_us -> logs seal-status/health changes until health 429/200
  local n=$1 s=$2 last= cur hs
  while :; do
    qreq "$n" GET /v1/sys/health; hs=$RC
    qreq "$n" GET /v1/sys/seal-status
    cur="health=$hs $(jq -c '{initialized,sealed,progress}' <<<"$BODY" 2>/dev/null)"
    [[ $cur != "$last" ]] && { log "$n +$(( ($(now_us) - s) / 1000 )) ms after its 3rd key: $cur"; last=$cur; }
    [[ $hs == 429 || $hs == 200 ]] && return
    (( ($(now_us) - s) / 1000000 > 60 )) && { log "$n: no standby within 60 s"; return; }
    sleep 0.02
  done
}
wait_code_json() { # node jq-filter timeout_s -> ms until seal-status matches
  local n=$1 f=$2 to=$3 s
  s=$(now_us)
  while :; do
    qreq "$n" GET /v1/sys/seal-status
    jq -e "$f" <<<"$BODY" >/dev/null 2>&1 && { echo $(( ($(now_us) - s) / 1000 )); return 0; }
    (( ($(now_us) - s) / 1000000 >= to )) && { echo "timeout"; return 1; }
    sleep 0.05
  done
}
wait_code() { # node path code timeout_s -> echoes ms waited (or "timeout")
  local n=$1 p=$2 c=$3 to=$4 s
  s=$(now_us)
  while :; do
    qreq "$n" GET "$p"
    [[ $RC == "$c" ]] && { echo $(( ($(now_us) - s) / 1000 )); return 0; }
    (( ($(now_us) - s) / 1000000 >= to )) && { echo "timeout(last=$RC)"; return 1; }
    sleep 0.02
  done
}

# --- 0. scratch, ports, per-run CA + one shared server cert -----------------------------------
section "setup in $WORK"
read -r P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(12)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
API[n1]=$P1; CL[n1]=$P2; API[n2]=$P3; CL[n2]=$P4; API[n3]=$P5; CL[n3]=$P6; API[n4]=$P7; CL[n4]=$P8; API[n5]=$P9; CL[n5]=$P10; API[n6]=$P11; CL[n6]=$P12
log "ports: n1 api=$P1 cluster=$P2  n2 api=$P3 cluster=$P4  n3 api=$P5 cluster=$P6  n4(pgp) api=$P7 cluster=$P8"

mkdir -p "$WORK/tls" "$WORK/plugins"
(
  cd "$WORK/tls" || exit 1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj "/CN=raft-probe CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \
    -subj "/CN=localhost" 2>/dev/null
  printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=critical,CA:FALSE' \
    'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth,clientAuth' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
    -extfile ext.cnf 2>/dev/null
  chmod 600 server.key ca.key
) || { log "cert generation failed"; exit 1; }

write_config() { # node [peers...]
  local n=$1; shift
  mkdir -p "$WORK/$n/data"
  {
    cat <<EOF
ui               = false
plugin_directory = "$WORK/plugins"
api_addr         = "https://127.0.0.1:${API[$n]}"
cluster_addr     = "https://127.0.0.1:${CL[$n]}"
log_file         = "$WORK/$n/bao.log"
log_level        = "info"

listener "tcp" {
  address         = "127.0.0.1:${API[$n]}"
  cluster_address = "127.0.0.1:${CL[$n]}"
  tls_cert_file   = "$WORK/tls/server.pem"
  tls_key_file    = "$WORK/tls/server.key"
}

storage "raft" {
  path                   = "$WORK/$n/data"
  node_id                = "$n"
  performance_multiplier = 1
EOF
    local p
    for p in "$@"; do
      cat <<EOF

  retry_join {
    leader_api_addr     = "https://127.0.0.1:${API[$p]}"
    leader_ca_cert_file = "$WORK/tls/ca.pem"
  }
EOF
    done
    echo "}"
  } >"$WORK/$n/config.hcl"
}
write_config n1 n2 n3
write_config n2 n1 n3
write_config n3 n1 n2
write_config n4            # standalone node for the pgp_keys experiment (binary keys)
write_config n5            # standalone node for the pgp_keys experiment (armored keys)
write_config n6 n1 n2 n3   # 4th node: wrong unseal key while joining
cp "$WORK/n2/config.hcl" "$WORK/config-template-example.hcl"

start_node() { # node label
  local n=$1 s; s=$(now_us)
  "$BAO" server -config="$WORK/$n/config.hcl" >>"$WORK/$n/stdout.log" 2>&1 &
  PID[$n]=$!
  local w; w=$(wait_code "$n" /v1/sys/seal-status 200 30)
  timing "$2: $n (pid ${PID[$n]}) process start -> first HTTP 200 on sys/seal-status: ${w} ms"
}
stop_node() { # node label  (SIGTERM, up to 30 s, then SIGKILL)
  local n=$1 p=${PID[$1]} s rc i
  s=$(now_us)
  kill -TERM "$p"
  for ((i = 0; i < 1500; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.02; done
  if kill -0 "$p" 2>/dev/null; then
    kill -KILL "$p"; wait "$p" 2>/dev/null
    timing "$2: $n SIGTERM -> still running after 30 s, SIGKILLed"
  else
    wait "$p" 2>/dev/null; rc=$?
    timing "$2: $n SIGTERM -> exit: $(( ($(now_us) - s) / 1000 )) ms (exit status $rc)"
  fi
  PID[$n]=
}

# --- 1. start the three nodes -----------------------------------------------------------------
section "1. start"
for n in n1 n2 n3; do start_node $n "first start"; done

# --- 2. before init ---------------------------------------------------------------------------
section "2. before init"
status_all "pre-init"
req n1 GET "/v1/sys/health?uninitcode=200"
req n1 GET "/v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200"
req n1 GET /v1/sys/init
req n1 GET /v1/sys/leader
req n2 PUT /v1/sys/unseal '{"key":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00"}'

section "2b. init node 1"
s=$(now_us)
req n1 PUT /v1/sys/init '{"secret_shares":5,"secret_threshold":3}'
timing "init: PUT sys/init on n1 took $(( ($(now_us) - s) / 1000 )) ms (status $RC)"
INIT=$BODY
echo "$INIT" >"$WORK/init.json"
ROOT=$(jq -r .root_token <<<"$INIT")
mapfile -t KEYS < <(jq -r '.keys[]' <<<"$INIT")
mapfile -t KEYS64 < <(jq -r '.keys_base64[]' <<<"$INIT")
log "init response fields: $(jq -c 'keys' <<<"$INIT"); key hex length=${#KEYS[0]} b64 length=${#KEYS64[0]}"
req n1 PUT /v1/sys/init '{"secret_shares":5,"secret_threshold":3}'   # second init
status_all "after init, leader still sealed"
req n1 GET "/v1/sys/health?sealedcode=200"
req n1 GET /v1/sys/leader
sleep 3
log "-- followers 3 s later (retry_join against a sealed leader)"
for n in n2 n3; do req $n GET /v1/sys/seal-status; done
log "-- unseal on follower n2 before it has joined (leader sealed)"
req n2 PUT /v1/sys/unseal "{\"key\":\"${KEYS[0]}\"}"
req n2 GET /v1/sys/seal-status
grep -iE 'join|challenge' "$WORK/n2/bao.log" | tail -4 | sed 's/^/    n2.log: /' | tee -a "$LOG"

# --- 3. unseal leader -------------------------------------------------------------------------
section "3. unseal leader n1"
req n1 PUT /v1/sys/unseal "{\"key\":\"${KEYS[0]}\"}"
req n1 PUT /v1/sys/unseal "{\"key\":\"${KEYS[1]}\"}"
s=$(now_us)
req n1 PUT /v1/sys/unseal "{\"key\":\"${KEYS[2]}\"}"
timing "leader: 3rd unseal call latency: $(( ($(now_us) - s) / 1000 )) ms"
w=$(wait_code n1 /v1/sys/health 200 60)
timing "leader: 3rd key sent -> health 200 (active): $(( ($(now_us) - s) / 1000 )) ms (polling saw it after ${w} ms)"
LEADER_ACTIVE=$(now_us)
req n1 GET /v1/sys/health
req n1 GET /v1/sys/seal-status

log "-- watching followers' seal-status until they can take keys"
declare -A LAST JOINED
while :; do
  for n in n2 n3; do
    qreq $n GET /v1/sys/seal-status
    st=$(jq -c '{initialized,sealed,t,n,progress,nonce}' <<<"$BODY" 2>/dev/null || echo "$RC $BODY")
    if [[ ${LAST[$n]:-} != "$st" ]]; then
      LAST[$n]=$st
      log "$n seal-status changed ($(( ($(now_us) - LEADER_ACTIVE) / 1000 )) ms after leader active): $RC $BODY"
      if [[ -z ${JOINED[$n]:-} ]] && jq -e '.initialized' <<<"$BODY" >/dev/null 2>&1; then
        JOINED[$n]=$(now_us)
        timing "follower $n: leader active -> seal-status initialized=true: $(( (JOINED[$n] - LEADER_ACTIVE) / 1000 )) ms"
      fi
    fi
  done
  [[ -n ${JOINED[n2]:-} && -n ${JOINED[n3]:-} ]] && break
  (( ($(now_us) - LEADER_ACTIVE) / 1000000 > 60 )) && { log "followers did not show initialized within 60 s"; break; }
  sleep 0.05
done
req n2 GET /v1/sys/health
grep -iE 'join|challenge' "$WORK/n2/bao.log" | tail -6 | sed 's/^/    n2.log: /' | tee -a "$LOG"

section "3b. unseal followers"
voters() { # -> "node:voter ..." from raft configuration
  qreq n1 GET /v1/sys/storage/raft/configuration "" "$ROOT"
  jq -r '[.data.config.servers[] | "\(.node_id):\(.voter)"] | join(" ")' <<<"$BODY" 2>/dev/null
}
wait_voter() { # node -> ms
  local n=$1 s; s=$(now_us)
  while :; do
    [[ " $(voters) " == *" $n:true "* ]] && { echo $(( ($(now_us) - s) / 1000 )); return; }
    (( ($(now_us) - s) / 1000000 > 120 )) && { echo "timeout($(voters))"; return; }
    sleep 0.1
  done
}
log "-- n2: keys one by one (seal-status between)"
for i in 0 1; do req n2 PUT /v1/sys/unseal "{\"key\":\"${KEYS[$i]}\"}"; done
s=$(now_us)
req n2 PUT /v1/sys/unseal "{\"key\":\"${KEYS[2]}\"}"
timing "follower n2: 3rd unseal call latency: $(( ($(now_us) - s) / 1000 )) ms"
watch_follower n2 "$s"
timing "follower n2: 3rd key sent -> health 429 (standby): $(( ($(now_us) - s) / 1000 )) ms"
log "raft configuration right after n2 standby: $(voters)"
w=$(wait_voter n2)
timing "follower n2: 3rd key sent -> voter=true in raft configuration: $(( ($(now_us) - s) / 1000 )) ms"
log "-- n3: one key, wait 5 s (does a retry_join attempt reset progress?), then the rest"
req n3 PUT /v1/sys/unseal "{\"key\":\"${KEYS[3]}\"}"
sleep 5
req n3 GET /v1/sys/seal-status
req n3 PUT /v1/sys/unseal "{\"key\":\"${KEYS[3]}\"}"      # same key again
req n3 PUT /v1/sys/unseal "{\"key\":\"${KEYS64[4]}\"}"    # base64 form
s3=$(now_us)
req n3 PUT /v1/sys/unseal "{\"key\":\"${KEYS[0]}\"}"
watch_follower n3 "$s3"
timing "follower n3: 3rd key sent -> health 429 (standby): $(( ($(now_us) - s3) / 1000 )) ms"
log "raft configuration right after n3 standby: $(voters)"
w=$(wait_voter n3)
timing "follower n3: 3rd key sent -> voter=true in raft configuration: $(( ($(now_us) - s3) / 1000 )) ms"
req n1 GET /v1/sys/storage/raft/configuration "" "$ROOT"
req n1 GET /v1/sys/storage/raft/autopilot/state "" "$ROOT"
req n1 GET /v1/sys/storage/raft/autopilot/configuration "" "$ROOT"

# --- 5. field names on active and standby -----------------------------------------------------
section "5. leader / seal-status / health on active (n1) and standby (n2)"
for n in n1 n2; do
  req $n GET /v1/sys/leader
  req $n GET /v1/sys/seal-status
  req $n GET /v1/sys/health
  req $n GET "/v1/sys/health?standbyok=true"
  req $n GET "/v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200"
  req $n GET "/v1/sys/health?standbycode=200"
  req $n HEAD /v1/sys/health
done
req n2 GET /v1/sys/storage/raft/configuration "" "$ROOT"   # forwarded by standby?
log "cluster port TLS (n1 cluster port, unsealed, what certificate is presented):"
echo | timeout 5 openssl s_client -connect "127.0.0.1:${CL[n1]}" -alpn raft_storage_v1 >"$WORK/s_client.txt" 2>&1
grep -E 'subject=|issuer=|verify|alert|ALPN|error' "$WORK/s_client.txt" | head -8 | sed 's/^/    /' | tee -a "$LOG"

# --- 7. init with pgp_keys on a separate standalone node --------------------------------------
section "7. pgp_keys on standalone n4"
export GNUPGHOME=$WORK/gnupg
mkdir -p "$GNUPGHOME"; chmod 700 "$GNUPGHOME"
gpg --batch --passphrase '' --quick-gen-key 'raft-probe <probe@example.invalid>' future-default default never 2>>"$LOG"
FPR=$(gpg --list-keys --with-colons | awk -F: '/^fpr/{print $10; exit}')
gpg --list-keys --keyid-format long 2>/dev/null | sed 's/^/    gpg: /' | tee -a "$LOG"
PUB64=$(gpg --export "$FPR" | base64 -w0)
PUBASC64=$(gpg --armor --export "$FPR" | base64 -w0)
start_node n4 "pgp node"
start_node n5 "pgp node"
req n4 PUT /v1/sys/init "{\"secret_shares\":5,\"secret_threshold\":3,\"pgp_keys\":[\"$PUB64\"]}"   # count mismatch
req n4 PUT /v1/sys/init "{\"secret_shares\":5,\"secret_threshold\":3,\"pgp_keys\":[$(gpg --armor --export "$FPR" | jq -Rs .),\"x\",\"x\",\"x\",\"x\"]}"
log "-- n5: armored key, base64-wrapped, x5"
req n5 PUT /v1/sys/init "{\"secret_shares\":5,\"secret_threshold\":3,\"pgp_keys\":[\"$PUBASC64\",\"$PUBASC64\",\"$PUBASC64\",\"$PUBASC64\",\"$PUBASC64\"]}"
stop_node n5 "pgp node"
log "-- n4: binary key base64 x5 + root_token_pgp_key"
req n4 PUT /v1/sys/init "{\"secret_shares\":5,\"secret_threshold\":3,\"pgp_keys\":[\"$PUB64\",\"$PUB64\",\"$PUB64\",\"$PUB64\",\"$PUB64\"],\"root_token_pgp_key\":\"$PUB64\"}"
PGPINIT=$BODY; echo "$PGPINIT" >"$WORK/init-pgp.json"
log "pgp init fields: $(jq -c 'keys' <<<"$PGPINIT"); keys[0] length=$(jq -r '.keys[0]|length' <<<"$PGPINIT")"
jq -r '.keys[0]' <<<"$PGPINIT" | xxd -r -p >"$WORK/k0.gpg"
jq -r '.keys_base64[0]' <<<"$PGPINIT" | base64 -d >"$WORK/k0b.gpg"
cmp -s "$WORK/k0.gpg" "$WORK/k0b.gpg" && log "keys[0] (hex) and keys_base64[0] decode to the same bytes"
log "gpg --list-packets of keys[0] (hex-decoded):"
gpg --list-packets "$WORK/k0.gpg" 2>&1 | sed 's/^/    /' | tee -a "$LOG"
mapfile -t OTHER < <(for i in 0 1 2 3 4; do jq -r ".keys[$i]" <<<"$PGPINIT" | xxd -r -p | gpg -q --batch --decrypt 2>/dev/null; echo; done)
log "decrypted keys[0] plaintext: '${OTHER[0]}' (length ${#OTHER[0]})"
log "init-pgp: keys_base64[0] decrypted: '$(jq -r '.keys_base64[0]' <<<"$PGPINIT" | base64 -d | gpg -q --batch --decrypt 2>/dev/null)'"
RT=$(jq -r .root_token <<<"$PGPINIT")
log "root_token field (first 40 chars): ${RT:0:40}..."
echo "$RT" | base64 -d >"$WORK/rt.gpg" 2>/dev/null
gpg --list-packets "$WORK/rt.gpg" 2>&1 | head -6 | sed 's/^/    rt: /' | tee -a "$LOG"
ROOT4=$(gpg -q --batch --decrypt "$WORK/rt.gpg" 2>/dev/null)
log "decrypted root token: '$ROOT4'"
for i in 0 1 2; do req n4 PUT /v1/sys/unseal "{\"key\":\"${OTHER[$i]}\"}"; done
w=$(wait_code n4 /v1/sys/health 200 60); log "n4 active after ${w} ms"
req n4 GET /v1/auth/token/lookup-self "" "$ROOT4"
stop_node n4 "pgp node"

# --- 4. restart ---------------------------------------------------------------------------------
section "4. restart all three"
for n in n1 n2 n3; do stop_node $n "restart"; done
for n in n1 n2 n3; do start_node $n "restart"; done
status_all "after restart"
log "-- key A to all"
for n in n1 n2 n3; do req $n PUT /v1/sys/unseal "{\"key\":\"${KEYS[0]}\"}"; done
log "-- waiting ${PROGRESS_WAIT} s with partial progress"
sleep "$PROGRESS_WAIT"
for n in n1 n2 n3; do req $n GET /v1/sys/seal-status; done

log "-- n1: duplicate, wrong (other cluster), malformed keys, reset"
req n1 PUT /v1/sys/unseal "{\"key\":\"${KEYS[0]}\"}"                 # duplicate of A
req n1 PUT /v1/sys/unseal "{\"key\":\"${OTHER[0]}\"}"                # wrong key (progress 2)
req n1 PUT /v1/sys/unseal "{\"key\":\"${KEYS[1]}\"}"                 # B -> threshold with one wrong
req n1 GET /v1/sys/seal-status
req n1 PUT /v1/sys/unseal "{\"key\":\"${KEYS[0]}\"}"
req n1 PUT /v1/sys/unseal '{"key":"not hex or base64!!"}'
req n1 GET /v1/sys/seal-status
req n1 PUT /v1/sys/unseal '{"key":"abcd"}'                            # 2 bytes hex
req n1 GET /v1/sys/seal-status
req n1 PUT /v1/sys/unseal "{\"key\":\"$(openssl rand -hex 64)\"}"    # 64 bytes hex
req n1 GET /v1/sys/seal-status
req n1 PUT /v1/sys/unseal "{\"key\":\"${KEYS[0]:0:64}\"}"            # 32 of 33 bytes
req n1 GET /v1/sys/seal-status
req n1 PUT /v1/sys/unseal '{}'
req n1 PUT /v1/sys/unseal 'garbage'
req n1 PUT /v1/sys/unseal '{"reset":true}'
req n1 PUT /v1/sys/unseal "{\"key\":\"${KEYS[0]}\"}"
req n1 PUT /v1/sys/unseal "{\"key\":\"${OTHER[0]}\"}"
req n1 PUT /v1/sys/unseal "{\"key\":\"${OTHER[1]}\"}"                # threshold: 1 good + 2 wrong
req n1 GET /v1/sys/seal-status
req n1 PUT /v1/sys/unseal '{"reset":true}'

log "-- rounds (n2/n3 still hold key A from before the wait; n1 was reset): A to n1, then B to all, then C to all"
req n1 PUT /v1/sys/unseal "{\"key\":\"${KEYS[0]}\"}"
declare -A DONE
for round in 1 2; do
  for n in n1 n2 n3; do
    [[ $round == 2 ]] && DONE[$n]=$(now_us)
    req $n PUT /v1/sys/unseal "{\"key\":\"${KEYS[$round]}\"}"
    [[ $round == 2 ]] && { qreq $n GET /v1/sys/health; log "$n health right after its 3rd key: $RC $BODY"; }
  done
done
LAST3=$(now_us)
declare -A SEEN
while :; do
  act=0; stb=0; cur=
  for n in n1 n2 n3; do qreq $n GET /v1/sys/health; cur+="$n=$RC "; [[ $RC == 200 ]] && act=$((act+1)); [[ $RC == 429 ]] && stb=$((stb+1)); done
  [[ -z ${SEEN[$cur]:-} ]] && { SEEN[$cur]=1; log "health after last key +$(( ($(now_us) - LAST3) / 1000 )) ms: $cur"; }
  (( act == 1 && stb == 2 )) && break
  (( ($(now_us) - LAST3) / 1000000 > 120 )) && break
  sleep 0.05
done
timing "restart: n3's 3rd key sent (all unsealed) -> one active + two standby: $(( ($(now_us) - LAST3) / 1000 )) ms ($cur)"
for n in n1 n2 n3; do timing "restart: $n 3rd key sent -> cluster has active node: $(( ($(now_us) - DONE[$n]) / 1000 )) ms"; done
timing "restart: raft configuration voters: $(voters)"
status_all "after restart + unseal"
req n1 GET /v1/sys/leader
req n2 GET /v1/sys/leader
req n3 GET /v1/sys/leader

# --- 8. wrong key at threshold while a follower is joining -------------------------------------
section "8. wrong keys on a joining follower (n6, retry_join to n1..n3)"
start_node n6 "joiner"
w=$(wait_code_json n6 '.initialized' 60); log "n6 seal-status initialized=true after ${w} ms"
req n6 PUT /v1/sys/unseal "{\"key\":\"${KEYS[0]}\"}"
req n6 PUT /v1/sys/unseal "{\"key\":\"$(openssl rand -hex 33)\"}"
s=$(now_us)
req n6 PUT /v1/sys/unseal "{\"key\":\"$(openssl rand -hex 33)\"}"   # threshold reached with 2 wrong shares
log "(that call returned after $(( ($(now_us) - s) / 1000 )) ms)"
req n6 GET /v1/sys/health
req n6 GET /v1/sys/seal-status
req n6 PUT /v1/sys/unseal '{"reset":true}'
sleep 5
req n6 GET /v1/sys/seal-status
grep -E 'retry join|challenge|waiting' "$WORK/n6/bao.log" | tail -3 | cut -c1-220 | sed 's/^/    n6.log: /' | tee -a "$LOG"
stop_node n6 "joiner (wedged)"
log "-- restart n6 and unseal it with correct keys"
ls -la "$WORK/n6/data" | sed 's/^/    /' | tee -a "$LOG"
start_node n6 "joiner restart"
w=$(wait_code_json n6 '.initialized' 60); log "n6 seal-status initialized=true after ${w} ms"
req n6 GET /v1/sys/seal-status
for i in 0 1; do req n6 PUT /v1/sys/unseal "{\"key\":\"${KEYS[$i]}\"}"; done
s=$(now_us)
req n6 PUT /v1/sys/unseal "{\"key\":\"${KEYS[2]}\"}"
watch_follower n6 "$s"
log "raft configuration: $(voters)"
stop_node n6 "joiner"

section "done"
for n in n1 n2 n3; do [[ -n ${PID[$n]:-} ]] && stop_node $n "final"; done
cat "$TIM"
