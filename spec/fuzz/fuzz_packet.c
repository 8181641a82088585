/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the reply decoder, in every form the engine feeds it,
 * and the payload comparison. */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "packet.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

/* The first byte picks the form: bit 0 the family, bit 1 an IPv4 header in
 * front (raw IPv4 sockets), bit 2 checksum verification. The rest is the
 * packet. Whatever the bytes, the decoder must not read out of bounds, and
 * what it reports must fit in what it was given. */
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  uint8_t mode = data[0];
  int family = (mode & 1) ? AF_INET6 : AF_INET;
  bool has_ip = (mode & 2) != 0;
  bool verify = (mode & 4) != 0;
  /* A copy of exactly the packet's size, so ASan sees any over-read. */
  size_t len = size - 1;
  uint8_t* packet = malloc(len ? len : 1);
  if (packet == NULL) {
    return 0;
  }
  for (size_t i = 0; i < len; i++) {
    packet[i] = data[i + 1];
  }
  ir_icmp_msg_t msg;
  if (ir_packet_decode(packet, len, family, has_ip, verify, &msg) == 0) {
    if (msg.icmp_len > len || msg.icmp_len < IR_ICMP_HEADER_LEN ||
        msg.cookie_len > IR_COOKIE_LEN) {
      abort();
    }
  }
  (void)ir_checksum(packet, len);
  /* The payload comparison reads only the bytes it is given, and a
   * difference it reports lies within them. */
  size_t at = ir_packet_payload_mismatch(packet, len, 0x01020304u, 0x05060708u,
                                         UINT64_C(0x1122334455667788));
  if (at != IR_PAYLOAD_SAME && at >= len) {
    abort();
  }
  free(packet);
  return 0;
}
