#!/usr/bin/env bash
# The terminal UI in a real call on loopback: a gateway, three headless
# clients (two talking, hands raised by two) and the TUI client joining by
# invitation, under tmux; the screen is captured to text files.
#   scripts/tui-demo.sh [OUT_DIR]      (default tui-demo-out/)
set -euo pipefail
cd "$(dirname "$0")/.."
LOWBAND_TUI_DEMO=1 scripts/deps.sh
export LOWBAND_DATA="${LOWBAND_DATA:-$(cd .. && pwd)/shared}"
S="$LOWBAND_DATA/speech"
out="${1:-tui-demo-out}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cargo build --quiet --bin lowband-gateway --bin lowband
bin="$(pwd)/target/debug"
port=$((20000 + RANDOM % 20000))
state="$out/gateway-state"
export HOME="$out/home" # the clients' trust store stays in the demo directory
mkdir -p "$HOME"

"$bin/lowband-gateway" --listen "127.0.0.1:$port" --state-dir "$state" >"$out/gateway.log" 2>&1 &
gw=$!
pids=("$gw")
session="lowband-tui-demo-$$"
cleanup() {
  tmux kill-session -t "$session" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
sleep 1
invite="$("$bin/lowband-gateway" --state-dir "$state" token --room echo-hiv --name "Dr. Ama" --role host --valid 1h --invite "127.0.0.1:$port" 2>/dev/null | tail -1)"
echo "invitation: $invite" | tee "$out/invitation.txt"
fp="$("$bin/lowband-gateway" --state-dir "$state" fingerprint)"

# The TUI client first (its token makes it the host), speaking the ARCTIC
# sentence through the voice processing at 11 s.
tmux new-session -d -s "$session" -x 100 -y 30 \
  "'$bin/lowband' join '$invite' --tui --input '$S/arctic_a0007.wav' --speak-at 11 --output '$out/tui-heard.wav' --process-input --duration 40 --log '$out/tui.log'; sleep 30"
sleep 2
join() { "$bin/lowband" join "127.0.0.1:$port" echo-hiv --fingerprint "$fp" --no-tui "$@" >>"$out/clients.log" 2>&1 & pids+=("$!"); }
join --name "Clinic 7" --input "$S/synthetic-case-presentation-16k.wav" --speak-at 1 --output "$out/clinic7.wav" --duration 34 --raise-hand
join --name "Clinic 9" --input "$S/synthetic-hub-reply-16k.wav" --speak-at 9 --output "$out/clinic9.wav" --duration 34
join --name "Clinic 3" --output "$out/clinic3.wav" --duration 34 --raise-hand --muted
sleep 7
tmux capture-pane -p -t "$session" >"$out/screen-1.txt"
tmux send-keys -t "$session" h     # the TUI user raises a hand too
sleep 3.5
tmux capture-pane -p -t "$session" >"$out/screen-2.txt"
tmux send-keys -t "$session" g     # as host: give the floor to the first raised hand
sleep 2
tmux capture-pane -p -t "$session" >"$out/screen-3.txt"
tmux send-keys -t "$session" m     # mute yourself
sleep 2
tmux capture-pane -p -t "$session" >"$out/screen-4.txt"
tmux send-keys -t "$session" q
sleep 3
for f in "$out"/screen-*.txt; do echo "== $f"; cat "$f"; done
