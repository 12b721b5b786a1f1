# Helpers shared by bench/compare.sh and bench/compare-pg.sh (sourced, not run).

# Prints a loopback port nothing listens on (bash's /dev/tcp connect to it fails).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}
