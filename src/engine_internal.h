/* SPDX-License-Identifier: MIT */
/* The engine's private structures, shared by engine*.c and sockets.c only. */
#ifndef ICMPRUN_ENGINE_INTERNAL_H
#define ICMPRUN_ENGINE_INTERNAL_H

#include <sys/socket.h>
#include <time.h>

#include "engine.h"
#include "heap.h"
#include "packet.h"
#include "probe_table.h"

/* Replies are read in batches of this many datagrams per recvmmsg call: twice
 * a send batch, so that the replies to one send batch come in one call, and
 * a call that returns less than a full batch says the queue is empty. */
#define IR_RECV_BATCH 128
/* Bytes kept of each received datagram: an IPv4 header with options, the
 * ICMP header and IR_CHECKED_PAYLOAD bytes of payload, every one of which is
 * compared with what was sent. Longer replies are counted by their real
 * length, and their bytes past that are not compared. */
#define IR_MAX_IPV4_HEADER_LEN 60
#define IR_RECV_BUFLEN \
  (IR_MAX_IPV4_HEADER_LEN + IR_ICMP_HEADER_LEN + IR_CHECKED_PAYLOAD)
/* Outcomes remembered of recently ended probes, to tell a late reply from a
 * duplicate one. A power of two; older probes only count as late. */
#define IR_RECENT_SLOTS 65536
/* Probes sent per turn of the loop at most. Between batches the loop reads
 * replies, so that a long queue cannot fill the receive buffer unread. */
#define IR_SEND_BATCH 256
/* The seed of a random-payload probe's filler (see ir_probe_spec_t): drawn
 * from the run's cookie and the probe's token, so that the receive path
 * draws the same bytes again; never 0, which means the fixed pattern. */
#define IR_FILLER_SEED(cookie, token) \
  ((((uint64_t)(cookie) << 32) | (uint64_t)(token)) * 0x2545F4914F6CDD1DULL | 1ULL)
/* Probes per sendmmsg call at most, and the payload a batch slot holds; a
 * larger probe is sent on its own. */
#define IR_MMSG_BATCH 64
#define IR_SLOT_PAYLOAD 1472
/* How often one probe's send is repeated because the socket reported an error
 * that belonged to an earlier probe, before the error is taken as its own. */
#define IR_SEND_ATTEMPTS 8
/* Send timestamp keys remembered per socket (a power of two): the probe each
 * recent key was given to. A stamp read after this many later sends is not
 * matched; stamps are read with every batch of replies, long before. */
#define IR_TX_KEY_SLOTS 16384
/* Error-queue messages read per recvmmsg call: a send batch's stamps. */
#define IR_ERRQUEUE_BATCH 64

typedef enum ir_probe_state_e {
  IR_PROBE_FREE = 0,
  IR_PROBE_QUEUED,   /* In the send queue, not yet on the wire. */
  IR_PROBE_IN_FLIGHT /* Sent; in the table and on the deadline heap. */
} ir_probe_state_t;

/* One probe from ir_engine_probe until its result callback returns. Allocated
 * from the engine's pool, which owns it; recycled after the callback. */
typedef struct ir_probe_s {
  ir_heap_node_t deadline; /* key: monotonic ns deadline; tie: token. */
  struct ir_probe_s* next; /* Send queue, expiry list or free list. */
  ir_probe_spec_t spec;
  struct ir_socket_s* sock; /* The socket it is sent on (spec's binding). */
  ir_result_cb cb;
  void* data;
  uint32_t token; /* Unique in this run; also in the payload cookie. */
  uint16_t seq;
  uint32_t key_hash; /* ir_table_hash(spec.addr, seq), once seq is chosen. */
  uint8_t state;
  uint8_t send_attempts;
  bool has_seq;  /* seq is chosen (kept across retried sends). */
  bool fragment; /* Larger than the IPv4 path MTU: sent alone, fragmented. */
  /* First differing payload byte of a corrupted answer, or -1: its final
   * result says so, since the answer itself never becomes one. */
  int32_t corrupt_offset;
  /* The kernel was asked to stamp this probe's last send, and its stamp
   * replaced sent_realtime (engine_txstamp.c). */
  bool tx_wanted;
  bool tx_kernel;
  /* Same clock as the kernel's timestamps: our clock read before the send
   * call, until the kernel's own send timestamp replaces it. */
  struct timespec sent_realtime;
  /* The send stamp written into the payload (realtime, ns): what a reply's
   * payload must carry back, whatever the kernel's own stamp says. */
  uint64_t payload_stamp_ns;
  uint64_t sent_mono_ns;
} ir_probe_t;

typedef enum ir_socket_kind_e {
  IR_KIND_NONE = 0,
  IR_KIND_DGRAM,
  IR_KIND_RAW
} ir_socket_kind_t;

/* One ICMP socket of one family. The engine owns it; the poll handle is closed
 * with the engine. `open_error` remembers a failed open so that it is not
 * retried for every probe. The engine's two default sockets are bound to
 * nothing; a bound socket (a source address, a device, or both) is allocated
 * on the first probe that asks for its binding, kept on the engine's list
 * `bound`, and freed with the engine. */
typedef struct ir_socket_s {
  struct ir_engine_s* engine;
  struct ir_socket_s* next_bound; /* The engine's list of bound sockets. */
  int family;
  ir_addr_t source; /* family 0: not bound to an address. */
  char device[IR_DEVICE_LEN];
  /* A bound socket whose bind failed is tried again after this time (uv_now,
   * ms): an address can be added to the host while a daemon runs. */
  uint64_t retry_open_at;
  int fd;
  ir_socket_kind_t kind;
  uint16_t ident; /* Echo identifier; ours to choose only on raw sockets. */
  uint16_t next_seq;
  bool poll_started;
  bool want_writable; /* A send hit EAGAIN: wait until the socket drains. */
  int open_error;     /* Negative errno of a failed open, or 0. */
  /* Kernel send timestamps (engine_txstamp.c): on for this socket; the key
   * the kernel gives the next stamped datagram; stamps sent and not yet
   * read (a hint only); and key -> token of recent sends, allocated on the
   * first send and freed with the engine. */
  bool tx_stamping;
  bool tx_verify; /* IR_TX_STAMP_VERIFY: stamps carry their datagram. */
  int tx_flags;   /* SO_TIMESTAMPING flags in use. */
  /* Each datagram carries its own key (the probe's token) in a control
   * message, SCM_TS_OPT_ID (Linux 6.13); otherwise the kernel counts. */
  bool tx_explicit;
  uint32_t tx_key_next;
  uint32_t tx_unread;
  struct ir_tx_key_s* tx_keys;
  char error_message[320];
  uv_poll_t poll;
} ir_socket_t;

/* What one message of a sendmmsg batch points at. */
typedef struct ir_send_slot_s {
  struct sockaddr_storage dest;
  struct iovec iov;
  union {
    /* TTL, TOS, and a send timestamp request with its key. */
    char buf[4 * CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
} ir_send_slot_t;

/* What became of a probe, by token: in flight (with the probe), or how it
 * ended. Tells a late reply from a duplicate, and a reply from the wrong
 * source from one with the wrong sequence number. */
typedef struct ir_recent_s {
  uint32_t token;
  uint8_t status;    /* ir_status_t + 1; 0 nothing remembered; see below. */
  ir_probe_t* probe; /* While in flight only. */
} ir_recent_t;

#define IR_RECENT_IN_FLIGHT 0xff

/* A simple LIFO pool of probes, grown a chunk at a time and freed whole. */
typedef struct ir_probe_chunk_s {
  struct ir_probe_chunk_s* next;
  ir_probe_t probes[];
} ir_probe_chunk_t;

struct ir_engine_s {
  uv_loop_t* loop;
  ir_engine_config_t config;
  ir_socket_t v4;
  ir_socket_t v6;
  ir_socket_t* bound; /* Sockets bound to a source or device: engine_bound.c. */

  ir_heap_t deadlines;
  ir_table_t in_flight;
  uv_timer_t expirer;
  uint64_t expirer_due_ns; /* Deadline the expirer is armed for; 0 = idle. */

  ir_probe_t* send_head; /* FIFO of probes waiting to be sent. */
  ir_probe_t* send_tail;
  uv_prepare_t flusher; /* Sends up to IR_SEND_BATCH queued probes a turn. */
  /* Active while probes are still queued after a flush, so that the loop
   * polls for replies without sleeping and comes back to send the rest. */
  uv_idle_t kicker;
  uv_timer_t retry_timer; /* After ENOBUFS, when no poll event will come. */
  bool send_blocked;      /* Waiting for writability or the retry timer. */
  /* While probes stay queued turn after turn, the flusher reads the replies
   * itself and the sockets are out of epoll: see ir__on_flush. */
  bool reading_inline;

  ir_probe_t* free_probes;
  ir_probe_chunk_t* chunks;
  uint32_t pending; /* Probes queued or in flight. */
  uint32_t queued;  /* Probes in the send queue. */
  uint32_t next_token;
  uint32_t run_cookie; /* Random per engine; first 4 payload bytes. */
  ir_recent_t* recent; /* IR_RECENT_SLOTS entries, allocated on first use. */

  uint8_t* send_buf; /* Scratch for one echo request too big for a slot. */
  ir_send_slot_t slots[IR_MMSG_BATCH];
  uint8_t slot_bufs[IR_MMSG_BATCH][IR_ICMP_HEADER_LEN + IR_SLOT_PAYLOAD];
  uint8_t recv_bufs[IR_RECV_BATCH][IR_RECV_BUFLEN];
  /* Bytes past IR_RECV_BUFLEN land here, overwritten by every message: only
   * the real length of a long reply matters, not its filler. */
  uint8_t recv_overflow[65536];

  ir_counters_t counters;
  ir_duplicate_cb on_duplicate; /* ir_engine_on_duplicate's; NULL if none. */
  void* on_duplicate_data;
  int open_handles; /* Handles still to be closed by ir_engine_close. */
  bool closing;
};

/* sockets.c: opening and closing the per-family sockets. */
int ir__socket_open(ir_socket_t* sock, int family, const ir_engine_config_t* config);
void ir__socket_close_fd(ir_socket_t* sock);
const char* ir__socket_kind_name(ir_socket_kind_t kind);

/* engine.c: shared by the send and receive paths. */
ir_socket_t* ir__engine_socket(ir_engine_t* engine, int family);
/* Opens sock (of any kind, default or bound) and starts watching it. */
int ir__socket_start(ir_engine_t* engine, ir_socket_t* sock);

/* engine_bound.c: the sockets bound to a source address or device. */
/* Whether the spec asks for a binding that applies to its probe. */
bool ir__spec_is_bound(const ir_probe_spec_t* spec);
/* The bound socket for spec, found or made and opened on first use. Returns
 * it, or NULL with *failed set to the (kept) socket whose open failed and
 * *err to the error. */
ir_socket_t* ir__bound_socket(ir_engine_t* engine, const ir_probe_spec_t* spec,
                              ir_socket_t** failed, int* err);
/* The bound socket for spec if one exists, open or not. */
const ir_socket_t* ir__bound_find(const ir_engine_t* engine,
                                  const ir_probe_spec_t* spec);
/* Runs fn on every socket, default and bound, open or not. */
void ir__each_socket(ir_engine_t* engine, void (*fn)(ir_socket_t* sock));
void ir__probe_finish(ir_engine_t* engine, ir_probe_t* probe, ir_result_t* result);
void ir__probe_arm(ir_engine_t* engine, ir_probe_t* probe);
/* The slot that remembers token, or NULL when memory is short. */
ir_recent_t* ir__recent_slot(ir_engine_t* engine, uint32_t token);
void ir__result_init(const ir_probe_t* probe, ir_status_t status, ir_result_t* out);
void ir__socket_update_poll(ir_socket_t* sock);

void ir__send_retry_later(ir_engine_t* engine);

/* engine_send.c */
void ir__send_flush(ir_engine_t* engine, unsigned budget);

/* engine_recv.c */
void ir__on_socket_event(uv_poll_t* handle, int status, int events);
void ir__read_replies(ir_socket_t* sock);
/* Handles one message of the error queue: an ICMP error about a probe, or a
 * send timestamp (handed to ir__txstamp_match). Returns true for the former. */
bool ir__handle_error(ir_socket_t* sock, const uint8_t* buf, size_t len,
                      struct msghdr* hdr);

/* engine_txstamp.c: kernel send timestamps, and the error queue they share
 * with ICMP errors. */
/* Asks the kernel to stamp every datagram the socket sends; on failure the
 * socket keeps user-space send times. */
void ir__txstamp_enable(ir_socket_t* sock, const ir_engine_config_t* config);
/* Decides whether the kernel stamps this send of the probe, and if so adds
 * the request and its key to the message's control data (at `used` bytes);
 * returns the new length. */
size_t ir__txstamp_add_cmsg(const ir_socket_t* sock, ir_probe_t* probe, char* control,
                            size_t used);
/* The probe has left the socket: if stamped, it got the kernel's next key. */
void ir__txstamp_sent(ir_socket_t* sock, const ir_probe_t* probe);
/* A send call failed with err for the head probe: keeps our key counter in
 * step with the kernel's. Returns true when the probe should be sent again
 * because the failure was the timestamp key's (see ir__txstamp_add_cmsg). */
bool ir__txstamp_send_failed(ir_socket_t* sock, int err);
/* A send timestamp (realtime) with its key has been read. */
void ir__txstamp_match(ir_socket_t* sock, uint32_t key, const struct timespec* stamp,
                       const uint8_t* looped, size_t looped_len);
/* Reads the whole error queue in batches. Returns how many ICMP errors (not
 * send timestamps) it held. */
unsigned ir__drain_error_queue(ir_socket_t* sock);
/* Called with every batch of replies before they are matched, so that their
 * probes carry the kernel's send times (queued before the replies came). */
void ir__txstamp_before_replies(ir_socket_t* sock);
void ir__txstamp_free(ir_socket_t* sock);

#endif
