// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Shardcar's eBPF interception (`shardcar intercept install --mode ebpf`), loaded by
// proxy/src/intercept/ebpf/load.rs. Built by proxy/build.rs with clang for the bpf target.
//
// Outbound capture without netfilter:
//   cgroup/connect4|6  an app's TCP connect() to a remote address is rewritten to the proxy's
//                      outbound listener (127.0.0.1 / ::1 : outbound_port); the original
//                      destination is stored under the socket's cookie.
//   sockops            when that connection is established, the entry moves to a map keyed by
//                      the app's (address, port), which is what the proxy sees as the peer.
//   cgroup/getsockopt  the proxy's getsockopt(SOL_IP|SOL_IPV6, SO_ORIGINAL_DST) on the
//                      accepted socket is answered from that map, so `original_dst` listeners
//                      work unchanged (the kernel's own answer, ENOENT/ENOPROTOOPT, is replaced).
// Optional acceleration (accelerate = 1):
//   sockops            established TCP sockets whose both ends are on this host go into a
//                      sockhash keyed by their 4-tuple;
//   sk_msg             a send on such a socket is moved straight into the peer socket's
//                      receive queue (bpf_msg_redirect_hash, BPF_F_INGRESS), skipping the
//                      TCP/IP stack and loopback. Without a peer in the map it passes normally.
//
// Never captured: loopback destinations, the proxy's uid / gid / SO_MARK, excluded ports and
// prefixes, non-TCP sockets, IPv4-mapped IPv6 destinations.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80
#define IPPROTO_TCP 6
#define SOCK_STREAM 1

// Set by the loader before load (read-only data: the verifier sees them as constants).
const volatile __u16 outbound_port = 15001;
const volatile __u8 accelerate = 0;
const volatile __u8 have_uid = 0;
const volatile __u8 have_gid = 0;
const volatile __u8 have_mark = 0;
const volatile __u32 proxy_uid = 0;
const volatile __u32 proxy_gid = 0;
const volatile __u32 proxy_mark = 0;

// An original destination. Addresses are in network order; IPv4 uses addr[0].
struct orig_dst {
	__u32 addr[4];
	__u16 port; // host order
	__u16 family;
};

// A captured client as the proxy sees its peer.
struct client_key {
	__u32 addr[4];
	__u32 port; // host order
	__u32 family;
};

// One end of a local TCP connection: its own and its peer's address.
struct sock_key {
	__u32 local[4];
	__u32 remote[4];
	__u32 lport; // host order
	__u32 rport; // host order
	__u32 family;
};

struct lpm_v4 {
	__u32 prefixlen;
	__u32 addr;
};

struct lpm_v6 {
	__u32 prefixlen;
	__u32 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct orig_dst);
} sc_dst_by_cookie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct client_key);
	__type(value, struct orig_dst);
} sc_dst_by_client SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);
	__type(value, __u8);
} sc_excl_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4);
	__type(value, __u8);
} sc_excl_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6);
	__type(value, __u8);
} sc_excl_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct sock_key);
	__type(value, __u32);
} sc_socks SEC(".maps");

// True when the connecting task or socket belongs to the proxy itself.
static __always_inline int is_proxy(struct bpf_sock *sk)
{
	__u64 ug = bpf_get_current_uid_gid();
	if (have_uid && (__u32)ug == proxy_uid)
		return 1;
	if (have_gid && (__u32)(ug >> 32) == proxy_gid)
		return 1;
	if (have_mark && sk && sk->mark == proxy_mark)
		return 1;
	return 0;
}

static __always_inline int port_excluded(__u16 port)
{
	return bpf_map_lookup_elem(&sc_excl_ports, &port) != 0;
}

SEC("cgroup/connect4")
int sc_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || (ctx->protocol != IPPROTO_TCP && ctx->protocol != 0))
		return 1;
	__u32 dst = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	if ((bpf_ntohl(dst) >> 24) == 127 || dst == 0)
		return 1;
	if (is_proxy(ctx->sk) || port_excluded(port))
		return 1;
	struct lpm_v4 k = { .prefixlen = 32, .addr = dst };
	if (bpf_map_lookup_elem(&sc_excl_v4, &k))
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct orig_dst o = { .port = port, .family = AF_INET };
	o.addr[0] = dst;
	if (bpf_map_update_elem(&sc_dst_by_cookie, &cookie, &o, BPF_ANY))
		return 1; // fail open: a connect we cannot record is left alone
	ctx->user_ip4 = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons(outbound_port);
	return 1;
}

SEC("cgroup/connect6")
int sc_connect6(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || (ctx->protocol != IPPROTO_TCP && ctx->protocol != 0))
		return 1;
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	if (a0 == 0 && a1 == 0 && (a2 == 0 || a2 == bpf_htonl(0xffff)))
		return 1; // ::, ::1 and IPv4-mapped addresses are left alone
	if (is_proxy(ctx->sk) || port_excluded(port))
		return 1;
	struct lpm_v6 k = { .prefixlen = 128 };
	k.addr[0] = a0;
	k.addr[1] = a1;
	k.addr[2] = a2;
	k.addr[3] = a3;
	if (bpf_map_lookup_elem(&sc_excl_v6, &k))
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct orig_dst o = { .port = port, .family = AF_INET6 };
	o.addr[0] = a0;
	o.addr[1] = a1;
	o.addr[2] = a2;
	o.addr[3] = a3;
	if (bpf_map_update_elem(&sc_dst_by_cookie, &cookie, &o, BPF_ANY))
		return 1;
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	ctx->user_ip6[2] = 0;
	ctx->user_ip6[3] = bpf_htonl(1);
	ctx->user_port = bpf_htons(outbound_port);
	return 1;
}

// The socket's own and its peer's address as a sockhash key. Every context field is read
// unconditionally (the verifier rejects the merged, offset ctx pointers clang makes of loads
// in alternative branches); for IPv4 only word 0 of each address is kept.
static __always_inline void sock_key_of(struct bpf_sock_ops *s, __u32 family, struct sock_key *k)
{
	__u32 l4 = s->local_ip4, r4 = s->remote_ip4;
	__u32 l0 = s->local_ip6[0], l1 = s->local_ip6[1], l2 = s->local_ip6[2], l3 = s->local_ip6[3];
	__u32 r0 = s->remote_ip6[0], r1 = s->remote_ip6[1], r2 = s->remote_ip6[2], r3 = s->remote_ip6[3];
	k->family = family;
	k->lport = s->local_port;
	k->rport = bpf_ntohl(s->remote_port);
	if (family == AF_INET) {
		k->local[0] = l4;
		k->remote[0] = r4;
	} else {
		k->local[0] = l0;
		k->local[1] = l1;
		k->local[2] = l2;
		k->local[3] = l3;
		k->remote[0] = r0;
		k->remote[1] = r1;
		k->remote[2] = r2;
		k->remote[3] = r3;
	}
}

// Both ends on this host: a loopback peer, or a peer address equal to our own.
static __always_inline int is_local_pair(const struct sock_key *k)
{
	if (k->family == AF_INET)
		return (bpf_ntohl(k->remote[0]) >> 24) == 127 || k->remote[0] == k->local[0];
	int loop6 = k->remote[0] == 0 && k->remote[1] == 0 && k->remote[2] == 0 &&
		    k->remote[3] == bpf_htonl(1);
	int same = k->remote[0] == k->local[0] && k->remote[1] == k->local[1] &&
		   k->remote[2] == k->local[2] && k->remote[3] == k->local[3];
	return loop6 || same;
}

SEC("sockops")
int sc_sockops(struct bpf_sock_ops *s)
{
	__u32 family = s->family;
	__u32 op = s->op;
	if (family != AF_INET && family != AF_INET6)
		return 1;
	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	struct sock_key k = {};
	sock_key_of(s, family, &k);
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		__u64 cookie = bpf_get_socket_cookie(s);
		struct orig_dst *o = bpf_map_lookup_elem(&sc_dst_by_cookie, &cookie);
		if (o) {
			struct orig_dst copy = *o;
			struct client_key c = { .port = k.lport, .family = family };
			c.addr[0] = k.local[0];
			c.addr[1] = k.local[1];
			c.addr[2] = k.local[2];
			c.addr[3] = k.local[3];
			bpf_map_update_elem(&sc_dst_by_client, &c, &copy, BPF_ANY);
			bpf_map_delete_elem(&sc_dst_by_cookie, &cookie);
		}
	}
	if (accelerate && is_local_pair(&k))
		bpf_sock_hash_update(s, &sc_socks, &k, BPF_NOEXIST);
	return 1;
}

struct sockaddr_in_ {
	__u16 family;
	__u16 port;
	__u32 addr;
	__u8 zero[8];
};

struct sockaddr_in6_ {
	__u16 family;
	__u16 port;
	__u32 flowinfo;
	__u32 addr[4];
	__u32 scope_id;
};

SEC("cgroup/getsockopt")
int sc_getsockopt(struct bpf_sockopt *ctx)
{
	if (ctx->optname != SO_ORIGINAL_DST || (ctx->level != SOL_IP && ctx->level != SOL_IPV6))
		return 1;
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;
	__u32 family = sk->family;
	__u32 d4 = sk->dst_ip4;
	__u32 d0 = sk->dst_ip6[0], d1 = sk->dst_ip6[1], d2 = sk->dst_ip6[2], d3 = sk->dst_ip6[3];
	struct client_key c = { .family = family };
	c.port = bpf_ntohs(sk->dst_port);
	if (family == AF_INET) {
		c.addr[0] = d4;
	} else if (family == AF_INET6) {
		c.addr[0] = d0;
		c.addr[1] = d1;
		c.addr[2] = d2;
		c.addr[3] = d3;
	} else {
		return 1;
	}
	struct orig_dst *o = bpf_map_lookup_elem(&sc_dst_by_client, &c);
	if (!o)
		return 1; // not ours: keep the kernel's answer
	if (o->family == AF_INET) {
		struct sockaddr_in_ *sa = ctx->optval;
		if ((void *)(sa + 1) > ctx->optval_end)
			return 1;
		sa->family = AF_INET;
		sa->port = bpf_htons(o->port);
		sa->addr = o->addr[0];
		__builtin_memset(sa->zero, 0, sizeof(sa->zero));
		ctx->optlen = sizeof(*sa);
	} else {
		struct sockaddr_in6_ *sa = ctx->optval;
		if ((void *)(sa + 1) > ctx->optval_end)
			return 1;
		sa->family = AF_INET6;
		sa->port = bpf_htons(o->port);
		sa->flowinfo = 0;
		sa->addr[0] = o->addr[0];
		sa->addr[1] = o->addr[1];
		sa->addr[2] = o->addr[2];
		sa->addr[3] = o->addr[3];
		sa->scope_id = 0;
		ctx->optlen = sizeof(*sa);
	}
	ctx->retval = 0;
	return 1;
}

SEC("sk_msg")
int sc_sk_msg(struct sk_msg_md *m)
{
	__u32 family = m->family;
	__u32 l4 = m->local_ip4, r4 = m->remote_ip4;
	__u32 l0 = m->local_ip6[0], l1 = m->local_ip6[1], l2 = m->local_ip6[2], l3 = m->local_ip6[3];
	__u32 r0 = m->remote_ip6[0], r1 = m->remote_ip6[1], r2 = m->remote_ip6[2], r3 = m->remote_ip6[3];
	// The peer's key: its local end is our remote end.
	struct sock_key peer = {};
	peer.family = family;
	peer.lport = bpf_ntohl(m->remote_port);
	peer.rport = m->local_port;
	if (family == AF_INET) {
		peer.local[0] = r4;
		peer.remote[0] = l4;
	} else {
		peer.local[0] = r0;
		peer.local[1] = r1;
		peer.local[2] = r2;
		peer.local[3] = r3;
		peer.remote[0] = l0;
		peer.remote[1] = l1;
		peer.remote[2] = l2;
		peer.remote[3] = l3;
	}
	// Without the peer in the map this leaves the message to the normal stack.
	bpf_msg_redirect_hash(m, &sc_socks, &peer, BPF_F_INGRESS);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
