/* SPDX-License-Identifier: MIT */
/* icmprun's ICMP echo engine on a libuv loop: the whole C API below Lua. */
#ifndef ICMPRUN_ENGINE_H
#define ICMPRUN_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "addr.h"

/* Largest echo payload (bytes after the 8-byte ICMP header) per family: an IPv4
 * datagram holds 65535 - 20 - 8, an IPv6 payload 65535 - 8. */
#define IR_MAX_SIZE_V4 65507
#define IR_MAX_SIZE_V6 65527
#define IR_DEFAULT_SIZE 56
#define IR_DEFAULT_TIMEOUT_MS 1000
/* Payload bytes of every reply compared with what was sent (cookie, send
 * stamp and filler): an Ethernet MTU's worth and more. Bytes past it are
 * counted by length only. */
#define IR_CHECKED_PAYLOAD 1500
/* Longest interface name with its NUL, as the kernel's IFNAMSIZ. */
#define IR_DEVICE_LEN 16

typedef struct ir_engine_s ir_engine_t;

typedef enum ir_status_e {
  IR_STATUS_REPLY = 0,
  IR_STATUS_TIMEOUT,
  IR_STATUS_UNREACHABLE,
  IR_STATUS_TTL_EXCEEDED,
  IR_STATUS_ERROR
} ir_status_t;

/* Which kind of socket to use. AUTO tries a datagram ICMP socket first and
 * falls back to a raw one; the other two force a kind (for tests and tools). */
typedef enum ir_socket_mode_e {
  IR_SOCKET_AUTO = 0,
  IR_SOCKET_DGRAM,
  IR_SOCKET_RAW
} ir_socket_mode_t;

/* One probe to send. Copied by ir_engine_probe; the caller keeps ownership. */
typedef struct ir_probe_spec_s {
  ir_addr_t addr;
  uint32_t timeout_ms; /* From the moment the probe leaves the socket. */
  uint32_t size;       /* Payload bytes after the ICMP header, as ping -s. */
  int ttl;             /* 1..255, or 0 for the system default. */
  int tos;             /* 0..255: IPv4 TOS byte or IPv6 traffic class. */
  const void* group;   /* Any tag; ir_engine_cancel_group ends a group. */
  /* Nonzero (1..65535): a flow-stable probe, whose message sums to this key
   * whatever its sequence number, so that probes with one key and target
   * carry one checksum and follow one path (see packet_flow.h). It needs
   * size >= IR_FLOW_MIN_SIZE. 0: the usual echo request. */
  uint16_t flow;
  /* true: the payload's filler is pseudo-random bytes drawn from the probe's
   * own cookie and token (fping -R), checked in the reply as the pattern
   * is; false: byte i = i, as iputils ping. Not with a flow key, whose two
   * balancing bytes are computed over the pattern. */
  bool random_payload;
  /* Where the probe leaves from (both optional, zero for the default). A
   * source address applies to probes of its own family only (as fping -S
   * binds only that family's socket): the probe goes out from it, on a
   * socket bound to it. A device name (as ping -I) binds the socket to that
   * interface (SO_BINDTODEVICE), whatever the family. Probes that share
   * both share one socket, opened on first use; one that cannot be bound
   * (the address is not this host's, no such device) is refused, see
   * ir_engine_probe. */
  ir_addr_t source; /* family 0 (AF_UNSPEC): none. */
  char device[IR_DEVICE_LEN];
} ir_probe_spec_t;

/* The one result of one probe. Valid only during the result callback. */
typedef struct ir_result_s {
  ir_status_t status;
  ir_addr_t addr; /* The probed address. */
  ir_addr_t from; /* Who answered (reply or ICMP error); see has_from. */
  bool has_from;
  double rtt_ms;  /* Round trip time; set for replies and ICMP errors. */
  uint16_t seq;   /* Echo sequence number used on the wire. */
  int ttl;        /* TTL or hop limit of the answer, -1 when unknown. */
  uint32_t bytes; /* ICMP bytes received (header and data). */
  int icmp_type;  /* Of an ICMP error, -1 otherwise. */
  int icmp_code;
  /* Negative errno (or libuv error) for ERROR and for a failed send; the
   * kernel's errno for an ICMP error (EHOSTUNREACH, ...); -EBADMSG for a
   * timeout after an answer whose payload was not what was sent. */
  int error;
  /* First payload byte (from 0, after the ICMP header) that differed in a
   * corrupted answer to this probe, -1 when none came. */
  int32_t corrupt_offset;
  void* data; /* The caller's pointer given to ir_engine_probe. */
  /* When the probe left (realtime clock), zero if it never did; tx_kernel
   * says whether the kernel stamped it as it went out (rtt_ms is then
   * kernel receive time minus kernel send time) or it is our own clock read
   * taken before the send call. */
  struct timespec sent;
  bool tx_kernel;
} ir_result_t;

typedef void (*ir_result_cb)(ir_engine_t* engine, const ir_result_t* result);

/* Where a probe's send time comes from. KERNEL asks the kernel to stamp each
 * probe as it leaves (SO_TIMESTAMPING) and falls back to USER on a socket that
 * refuses; USER reads our clock just before the send call. AUTO is KERNEL
 * except while the send queue stays full from one turn of the loop to the
 * next (an unpaced sweep at full speed), where reading a stamp per probe
 * would cost about 10 % of the sweep's speed, and its probes take USER. */
typedef enum ir_tx_stamp_mode_e {
  IR_TX_STAMP_AUTO = 0,
  IR_TX_STAMP_KERNEL,
  IR_TX_STAMP_USER,
  /* For tests: KERNEL, but each stamp comes with a copy of its datagram, and
   * one whose datagram is not the probe its key names is counted in
   * tx_stamps_misattributed and not used. */
  IR_TX_STAMP_VERIFY
} ir_tx_stamp_mode_t;

typedef struct ir_engine_config_s {
  ir_socket_mode_t socket_mode;
  int send_buffer; /* SO_SNDBUF for the sockets in bytes; 0 keeps the default. */
  /* The environment variable ICMPRUN_TX_STAMP (auto, kernel, user or verify)
   * overrides this, so that any program on the engine can be measured both
   * ways. */
  ir_tx_stamp_mode_t tx_stamp;
  /* For tests: number stamps with the kernel's per-socket counter even where
   * each probe could carry its own key (ICMPRUN_TX_KEYS=counter). */
  bool tx_keys_counter;
} ir_engine_config_t;

/* What happened to traffic that did not become a result, and totals. */
typedef struct ir_counters_s {
  uint64_t sent;    /* Probes that left the socket. */
  uint64_t results; /* Results delivered, of every status. */
  uint64_t replies;
  uint64_t timeouts;
  uint64_t icmp_errors;  /* Unreachable and time exceeded, from error queues. */
  uint64_t send_errors;  /* Sends that failed and became results. */
  uint64_t send_retries; /* Sends repeated after EAGAIN/ENOBUFS/queued errors. */
  uint64_t send_blocked; /* Of those, the times a full socket said EAGAIN. */
  uint64_t late;         /* Replies to our probes that had already ended. */
  uint64_t duplicates;   /* Second replies to probes that had a reply. */
  uint64_t foreign;      /* Not ours at all, or ours from the wrong source. */
  uint64_t corrupted;    /* To a probe in flight, but its payload is not ours. */
  /* First differing payload byte of the last corrupted answer that could be
   * told apart from a foreign one (valid once corrupted > 0). */
  uint64_t corrupt_offset;
  uint64_t wrong_seq;   /* Ours, from the right source, wrong sequence. */
  uint64_t malformed;   /* Packets that do not decode or fail the checksum. */
  uint64_t clock_steps; /* RTTs taken from the monotonic clock instead. */
  /* Probes ended (cancelled, or the engine closed) before they were sent;
   * their results are ERROR -ECANCELED. Never counted in `sent`, so that
   * sent + cancelled + send_errors == results once nothing is pending. */
  uint64_t cancelled;
  uint64_t tx_stamps; /* Kernel send timestamps matched to their probe. */
  /* Kernel send timestamps that matched no probe in flight, or one they
   * cannot belong to (earlier than the probe's send call): not used. */
  uint64_t tx_stamps_unmatched;
  uint64_t tx_stamps_misattributed; /* IR_TX_STAMP_VERIFY only. */
} ir_counters_t;

/* A reply with our cookie to a probe that had already been answered: the
 * second (third...) answer to one probe. Valid only during the callback. */
typedef struct ir_duplicate_s {
  /* Who sent it. An answer is matched to its probe by the address it comes
   * from, so a copy of a reply comes from the probed address; an ICMP error
   * about an answered probe gives the probe's own address. */
  ir_addr_t from;
  uint16_t seq; /* The answered probe's echo sequence number. */
} ir_duplicate_t;

typedef void (*ir_duplicate_cb)(ir_engine_t* engine, const ir_duplicate_t* dup,
                                void* data);

/* Creates an engine on loop. Sockets open on first use of each family.
 * Returns 0 or a negative errno; *out is set only on success. */
int ir_engine_new(uv_loop_t* loop, const ir_engine_config_t* config, ir_engine_t** out);

/* Opens the family's socket now if it is not open. Returns 0 or a negative
 * errno; ir_engine_socket_error then says why and what to do. */
int ir_engine_open(ir_engine_t* engine, int family);

/* Queues one probe; it is sent on the loop's next turn. The callback is called
 * exactly once with its result, never from inside this call. Returns 0, or a
 * negative errno (and then the callback is never called): the open error when
 * the socket for its family (and source and device) cannot be opened, such as
 * -EACCES, or -EADDRNOTAVAIL / -ENODEV when the source address is not this
 * host's or the device does not exist (ir_engine_probe_error says which);
 * -EINVAL for a bad spec. */
int ir_engine_probe(ir_engine_t* engine, const ir_probe_spec_t* spec, ir_result_cb cb,
                    void* data);

/* Ends every queued or in-flight probe whose spec.group is `group` at once,
 * each with an ERROR result (-ECANCELED) delivered before this returns; a
 * queued one is never sent. Returns how many were cancelled. */
unsigned ir_engine_cancel_group(ir_engine_t* engine, const void* group);

/* Why the family's socket could not be opened, or NULL if it did not fail. */
const char* ir_engine_socket_error(const ir_engine_t* engine, int family);

/* Opens now the socket that a probe with this spec would use (its address's
 * family, source and device), if it is not open. Returns 0 or a negative
 * errno; ir_engine_probe_error then says why. */
int ir_engine_open_for(ir_engine_t* engine, const ir_probe_spec_t* spec);

/* "dgram" or "raw" for the open socket that a probe with this spec would
 * use, NULL when it is not open. */
const char* ir_engine_socket_kind_for(const ir_engine_t* engine,
                                      const ir_probe_spec_t* spec);

/* Why the socket a probe with this spec would use (its family, source and
 * device) could not be opened or bound, or NULL if it did not fail. Valid
 * until the next call into the engine. */
const char* ir_engine_probe_error(const ir_engine_t* engine,
                                  const ir_probe_spec_t* spec);

/* "dgram" or "raw" for an open socket of that family, NULL otherwise. */
const char* ir_engine_socket_kind(const ir_engine_t* engine, int family);

/* "kernel" when that family's open socket stamps sends in the kernel, "user"
 * when it does not (forced, or refused), NULL when it is not open. */
const char* ir_engine_tx_stamp(const ir_engine_t* engine, int family);

/* Probes queued or in flight. */
uint32_t ir_engine_pending(const ir_engine_t* engine);

/* Probes queued and not sent yet. */
uint32_t ir_engine_queued(const ir_engine_t* engine);

void ir_engine_counters(const ir_engine_t* engine, ir_counters_t* out);

/* The configuration the engine was made with (for engines made like it). */
void ir_engine_get_config(const ir_engine_t* engine, ir_engine_config_t* out);

/* Ends every pending probe with an ERROR result (-ECANCELED), closes sockets
 * and handles, and frees the engine once libuv has closed them (the loop must
 * run for that). The engine must not be used after this call. */
void ir_engine_close(ir_engine_t* engine);

/* Calls cb(engine, dup, data) for every duplicate, once it is counted in
 * counters.duplicates (so the calls and the counter always agree); NULL
 * stops the calls. A duplicate is never a result: the probe's one result was
 * its first answer. The callback must not close the engine. */
void ir_engine_on_duplicate(ir_engine_t* engine, ir_duplicate_cb cb, void* data);

/* "reply", "timeout", "unreachable", "ttl_exceeded" or "error". */
const char* ir_status_name(ir_status_t status);

/* The status a name of ir_status_name gives, or -1 for any other string. */
int ir_status_from_name(const char* name);

/* A result of status for addr that carries nothing else: no answer, no
 * TTL, no ICMP type or code, no corrupted byte. Every result starts here,
 * so that none leaves a field at 0 where -1 means "none". */
void ir_result_blank(ir_result_t* out, ir_status_t status, const ir_addr_t* addr);

/* The ERROR result of a probe that never left: refused by the engine, or
 * abandoned before its send. error is the negative errno. */
void ir_result_unsent(ir_result_t* out, const ir_addr_t* addr, int error, void* data);

/* The symbolic name of a negative errno or libuv error: "EACCES",
 * "EHOSTUNREACH", "EAI_NONAME"... Never NULL; "UNKNOWN" for a value neither
 * glibc nor libuv names. */
const char* ir_error_name(int err);

#endif
