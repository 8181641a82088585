/* icmprun's ICMP echo engine on a libuv loop: the whole C API below Lua. */
#ifndef ICMPRUN_ENGINE_H
#define ICMPRUN_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
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
} ir_result_t;

typedef void (*ir_result_cb)(ir_engine_t* engine, const ir_result_t* result);

typedef struct ir_engine_config_s {
  ir_socket_mode_t socket_mode;
  int send_buffer; /* SO_SNDBUF for the sockets in bytes; 0 keeps the default. */
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
} ir_counters_t;

/* Creates an engine on loop. Sockets open on first use of each family.
 * Returns 0 or a negative errno; *out is set only on success. */
int ir_engine_new(uv_loop_t* loop, const ir_engine_config_t* config, ir_engine_t** out);

/* Opens the family's socket now if it is not open. Returns 0 or a negative
 * errno; ir_engine_socket_error then says why and what to do. */
int ir_engine_open(ir_engine_t* engine, int family);

/* Queues one probe; it is sent on the loop's next turn. The callback is called
 * exactly once with its result, never from inside this call. Returns 0, or a
 * negative errno (and then the callback is never called): -EAFNOSUPPORT when
 * that family's socket cannot be opened, -EINVAL for a bad spec. */
int ir_engine_probe(ir_engine_t* engine, const ir_probe_spec_t* spec, ir_result_cb cb,
                    void* data);

/* Ends every queued or in-flight probe whose spec.group is `group` at once,
 * each with an ERROR result (-ECANCELED) delivered before this returns; a
 * queued one is never sent. Returns how many were cancelled. */
unsigned ir_engine_cancel_group(ir_engine_t* engine, const void* group);

/* Why the family's socket could not be opened, or NULL if it did not fail. */
const char* ir_engine_socket_error(const ir_engine_t* engine, int family);

/* "dgram" or "raw" for an open socket of that family, NULL otherwise. */
const char* ir_engine_socket_kind(const ir_engine_t* engine, int family);

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

/* "reply", "timeout", "unreachable", "ttl_exceeded" or "error". */
const char* ir_status_name(ir_status_t status);

/* The symbolic name of a negative errno or libuv error: "EACCES",
 * "EHOSTUNREACH", "EAI_NONAME"... Never NULL; "UNKNOWN" for a value neither
 * glibc nor libuv names. */
const char* ir_error_name(int err);

#endif
