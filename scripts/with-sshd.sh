#!/usr/bin/env bash
# Runs a command with a real SFTP server (Debian's OpenSSH sshd, internal-sftp) on 127.0.0.1 and
# a free port, then stops it. Installs openssh-server when missing (without letting the package
# start a system sshd on :22). Needs root: sshd chroots the SFTP user and must be started as root.
#
# The command sees:
#   CXLAKE_TEST_SFTP_PORT         the port on 127.0.0.1
#   CXLAKE_TEST_SFTP_USER         a system user chrooted into CXLAKE_TEST_SFTP_ROOT
#   CXLAKE_TEST_SFTP_PASSWORD     its password (random per run)
#   CXLAKE_TEST_SFTP_ROOT         the chroot on this machine: a test writes its tree under it and
#                                 reads it as sftp://USER@127.0.0.1:PORT/<path under the root>
#   CXLAKE_TEST_SFTP_KNOWN_HOSTS  a known_hosts file with the server's key ([127.0.0.1]:PORT)
#   CXLAKE_TEST_SFTP_IDENTITY     a private key (ed25519, no passphrase) the user may log in with
set -euo pipefail

user=cxlake-sftp
sshd=/usr/sbin/sshd

if [ "$(id -u)" != 0 ]; then
  echo "error: the SFTP tests need root (sshd chroots its user); run 'make test' as root, e.g. in CI" >&2
  exit 2
fi

if [ ! -x "$sshd" ]; then
  echo "Installing openssh-server (Debian) for the SFTP tests" >&2
  # A policy-rc.d that refuses every start: the package must not start a system sshd on :22.
  policy=/usr/sbin/policy-rc.d
  had_policy=0
  [ -e "$policy" ] && had_policy=1 && cp -p "$policy" "$policy.cxlake-saved"
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
  if [ "$had_policy" = 1 ]; then mv "$policy.cxlake-saved" "$policy"; else rm -f "$policy"; fi
fi

free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
}

# sshd refuses a chroot any of whose components is writable by others, so not under /tmp.
base=$(mktemp -d /var/lib/cxlake-test-sftp.XXXXXX)
chmod 755 "$base"
chroot_dir="$base/root"
conf="$base/conf"
mkdir -p "$chroot_dir" "$conf" /run/sshd
chmod 755 "$chroot_dir"

cleanup() {
  if [ -n "${sshd_pid:-}" ]; then
    kill "$sshd_pid" 2>/dev/null || true
    wait "$sshd_pid" 2>/dev/null || true
  fi
  rm -rf "$base"
}
trap cleanup EXIT

id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
  --shell /usr/sbin/nologin "$user"
password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
echo "$user:$password" | chpasswd

ssh-keygen -q -t ed25519 -N '' -C cxlake-test-host -f "$conf/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C cxlake-test-client -f "$conf/client_ed25519"
cp "$conf/client_ed25519.pub" "$conf/authorized_keys"
chmod 644 "$conf/authorized_keys"

port=$(free_port)
cat >"$conf/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $conf/host_ed25519
PidFile $conf/sshd.pid
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile $conf/authorized_keys
PermitRootLogin no
AllowUsers $user
MaxStartups 100:30:200
MaxSessions 50
LogLevel INFO
Subsystem sftp internal-sftp
Match User $user
  ChrootDirectory $chroot_dir
  ForceCommand internal-sftp
  AllowTcpForwarding no
  X11Forwarding no
EOF

"$sshd" -t -f "$conf/sshd_config"
"$sshd" -D -e -f "$conf/sshd_config" 2>"$conf/sshd.log" &
sshd_pid=$!

for _ in $(seq 1 100); do
  if python3 - "$port" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    sys.exit(0 if s.recv(4).startswith(b"SSH-") else 1)
except Exception:
    sys.exit(1)
PY
  then ready=1; break; fi
  kill -0 "$sshd_pid" 2>/dev/null || { echo "error: sshd exited during start-up:" >&2; cat "$conf/sshd.log" >&2; exit 2; }
  sleep 0.1
done
[ "${ready:-0}" = 1 ] || { echo "error: sshd did not come up; log:" >&2; cat "$conf/sshd.log" >&2; exit 2; }

echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$conf/host_ed25519.pub")" >"$conf/known_hosts"

export CXLAKE_TEST_SFTP_PORT=$port CXLAKE_TEST_SFTP_USER=$user CXLAKE_TEST_SFTP_PASSWORD=$password
export CXLAKE_TEST_SFTP_ROOT=$chroot_dir CXLAKE_TEST_SFTP_KNOWN_HOSTS=$conf/known_hosts
export CXLAKE_TEST_SFTP_IDENTITY=$conf/client_ed25519
echo "sshd (SFTP) on 127.0.0.1:$port, user $user chrooted into $chroot_dir" >&2
"$@"
