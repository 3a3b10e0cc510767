#!/usr/bin/env bash
# Two ranks as two hosts: each in a network namespace of its own, joined by
# a veth pair (10.231.0.1 and .2), the environment torchrun would give on two
# machines and GLOO_SOCKET_IFNAME naming each one's interface, as
# docs/distributed.md's recipe says. The run must end with the loss log a
# `--nproc 2` run on loopback writes. Exits 77 (skipped) where namespaces
# cannot be made (not root, no ip, no CAP_NET_ADMIN).
#   two_hosts.sh COZY WORKDIR
set -uo pipefail
cozy=$1 work=$2
command -v ip >/dev/null || { echo "no ip (iproute2): skipped"; exit 77; }
[ -d /usr/share/datasets/fashion-mnist ] || { echo "no Fashion-MNIST (dataset-fashion-mnist): skipped"; exit 77; }
a=cozy_a_$$ b=cozy_b_$$ va=cva$$ vb=cvb$$
cleanup() { ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
ip netns add "$a" 2>/dev/null && ip netns add "$b" 2>/dev/null || { echo "cannot make network namespaces: skipped"; exit 77; }
{
  ip link add "$va" type veth peer name "$vb" &&
    ip link set "$va" netns "$a" && ip link set "$vb" netns "$b" &&
    ip -n "$a" addr add 10.231.0.1/24 dev "$va" && ip -n "$b" addr add 10.231.0.2/24 dev "$vb" &&
    ip -n "$a" link set lo up && ip -n "$b" link set lo up &&
    ip -n "$a" link set "$va" up && ip -n "$b" link set "$vb" up
} 2>"$work.ip" || { echo "cannot join the namespaces by veth ($(cat "$work.ip")): skipped"; rm -f "$work.ip"; exit 77; }
rm -f "$work.ip"
set -e
mkdir -p "$work"
cat >"$work/vae.json" <<'JSON'
{
  "1": {"class_type": "LoadFashionMNIST", "inputs": {"split": "train", "subset": 512, "shuffle_seed": 0}},
  "2": {"class_type": "TrainVAE", "inputs": {"dataset": ["1", 0], "epochs": 3, "batch": 32, "latent": 8, "width": 8,
        "seed": 0, "name": "vae"}},
  "3": {"class_type": "SaveModel", "inputs": {"model": ["2", 0], "filename_prefix": "vae_final"}}
}
JSON
run=(run "$work/vae.json" --progress none --threads 1 --dist-timeout 30)
"$cozy" "${run[@]}" --output-dir "$work/loopback" --nproc 2 2>"$work/loopback.txt" >/dev/null
host() {  # host NAMESPACE RANK INTERFACE
  ip netns exec "$1" env RANK="$2" WORLD_SIZE=2 MASTER_ADDR=10.231.0.1 MASTER_PORT=29533 GLOO_SOCKET_IFNAME="$3" \
    "$cozy" "${run[@]}" --output-dir "$work/host$2" 2>"$work/host$2.txt" >/dev/null
}
set +e
host "$a" 0 "$va" & first=$!
host "$b" 1 "$vb"; second=$?
wait $first; first=$?
set -e
if [ $first -ne 0 ] || [ $second -ne 0 ]; then
  echo "the two hosts failed ($first, $second):"; cat "$work/host0.txt" "$work/host1.txt"; exit 1
fi
cmp "$work/host0/vae_log_00001.csv" "$work/loopback/vae_log_00001.csv" || {
  echo "two hosts and loopback train differently:"; paste "$work/host0/vae_log_00001.csv" "$work/loopback/vae_log_00001.csv"; exit 1
}
[ ! -e "$work/host1/vae_log_00001.csv" ] || { echo "rank 1 wrote its log where the user sees it"; exit 1; }
echo "two hosts over veth: the loss log of 2 ranks on loopback, bit for bit"
cat "$work/host0/vae_log_00001.csv"
