/* SPDX-License-Identifier: MIT */
/* Links with a fixed one-way delay between network namespaces: the delay
 * `tc netem` would give, on kernels that have no netem qdisc.
 *
 *   delay_link WATCH_PID DELAY_US NS_A IF_A NS_B IF_B [NS_A IF_A NS_B IF_B]...
 *
 * For each link, creates the TAP device IF_A in namespace NS_A and IF_B in
 * NS_B ("-" for the namespace it was started in; others by their name under
 * /run/netns), then copies every Ethernet frame that one side sends out of
 * the other, DELAY_US microseconds later. Frames keep their order; a frame
 * that finds its direction's queue full is dropped, as a full qdisc would.
 *
 * It works below IP: routers on either side see an ordinary Ethernet link,
 * no TTL changes and no extra hop. Once every device exists it detaches
 * (the command returns), and the copy runs until the process WATCH_PID
 * exits: scripts/testnet passes the process that owns the test network.
 * One process serves every link, and asks for a real-time priority where
 * it may, so that a loaded machine delays the frames it copies as little
 * as possible: the delay is the link's, not the scheduler's. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Frames on a TAP device are at most its MTU (1500 here) plus the Ethernet
 * header; the slots leave room for a larger MTU up to 2,000. */
#define SLOT_BYTES 2048
#define QUEUE_SLOTS 512
#define MAX_LINKS 8

typedef struct slot_s {
  uint64_t due_ns;
  size_t len;
  uint8_t frame[SLOT_BYTES];
} slot_t;

/* Frames read from one device, waiting for their turn on the other, in
 * arrival order: with one delay for all, the head is always due first. */
typedef struct queue_s {
  slot_t slots[QUEUE_SLOTS];
  size_t head;
  size_t count;
  unsigned long dropped;
} queue_t;

/* One link (owned by the links array in main, never freed). queues[i]
 * holds what fds[i] sent, for fds[1 - i]. */
typedef struct delay_link_s {
  int fds[2];
  uint64_t delay_ns;
  queue_t queues[2];
} delay_link_t;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char* what) {
  fprintf(stderr, "delay_link: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Opens the TAP device NAME in namespace NS, then returns to our own. */
static int open_tap(const char* ns, const char* name, int home_ns) {
  if (strcmp(ns, "-") != 0) {
    char path[512];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    int ns_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0 || setns(ns_fd, CLONE_NEWNET) != 0) {
      die(path);
    }
    close(ns_fd);
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    die("/dev/net/tun");
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    die(name);
  }
  if (setns(home_ns, CLONE_NEWNET) != 0) {
    die("back to our namespace");
  }
  return fd;
}

/* Reads every frame waiting on fds[side] into its queue. */
static void take_frames(delay_link_t* link, int side) {
  queue_t* q = &link->queues[side];
  for (;;) {
    uint8_t scratch[SLOT_BYTES];
    slot_t* slot =
        q->count < QUEUE_SLOTS ? &q->slots[(q->head + q->count) % QUEUE_SLOTS] : NULL;
    ssize_t n = read(link->fds[side], slot ? slot->frame : scratch, SLOT_BYTES);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        return;
      }
      die("read");
    }
    if (slot == NULL) {
      q->dropped++;
      continue;
    }
    slot->len = (size_t)n;
    slot->due_ns = now_ns() + link->delay_ns;
    q->count++;
  }
}

/* Sends every frame whose time has come out of the other device. */
static void give_due_frames(delay_link_t* link, int side, uint64_t now) {
  queue_t* q = &link->queues[side];
  while (q->count > 0 && q->slots[q->head].due_ns <= now) {
    slot_t* slot = &q->slots[q->head];
    /* A write to a TAP device is a frame received by the kernel: it never
     * blocks, and a failure (the device is down) loses only this frame. */
    if (write(link->fds[1 - side], slot->frame, slot->len) < 0) {
      q->dropped++;
    }
    q->head = (q->head + 1) % QUEUE_SLOTS;
    q->count--;
  }
}

/* The earliest time a queued frame of LINK is due, or UINT64_MAX. */
static uint64_t next_due(const delay_link_t* link) {
  uint64_t due = UINT64_MAX;
  for (int side = 0; side < 2; side++) {
    const queue_t* q = &link->queues[side];
    if (q->count > 0 && q->slots[q->head].due_ns < due) {
      due = q->slots[q->head].due_ns;
    }
  }
  return due;
}

/* Copies frames until the watched process exits. pfds holds each link's
 * two devices in turn, then the watched process's pidfd. */
static void run(delay_link_t* links, int count, struct pollfd* pfds) {
  for (;;) {
    uint64_t now = now_ns();
    uint64_t due = UINT64_MAX;
    for (int i = 0; i < count; i++) {
      give_due_frames(&links[i], 0, now);
      give_due_frames(&links[i], 1, now);
      uint64_t link_due = next_due(&links[i]);
      due = link_due < due ? link_due : due;
    }
    /* Sleep until the earliest queued frame is due, a frame comes, or the
     * watched process exits; with nothing queued, until one of the last. */
    struct timespec ts;
    uint64_t wait = due == UINT64_MAX ? 0 : due > now ? due - now : 0;
    ts.tv_sec = (time_t)(wait / 1000000000u);
    ts.tv_nsec = (long)(wait % 1000000000u);
    nfds_t n = (nfds_t)(2 * count + 1);
    if (ppoll(pfds, n, due == UINT64_MAX ? NULL : &ts, NULL) < 0 && errno != EINTR) {
      die("ppoll");
    }
    if (pfds[2 * count].revents != 0) {
      return; /* The test network's owner has gone: so do we. */
    }
    for (int i = 0; i < 2 * count; i++) {
      if (pfds[i].revents & POLLIN) {
        take_frames(&links[i / 2], i % 2);
      }
    }
  }
}

int main(int argc, char** argv) {
  if (argc < 7 || (argc - 3) % 4 != 0 || (argc - 3) / 4 > MAX_LINKS) {
    fprintf(stderr,
            "usage: delay_link WATCH_PID DELAY_US NS_A IF_A NS_B IF_B "
            "[NS_A IF_A NS_B IF_B]... (at most %d links)\n",
            MAX_LINKS);
    return 2;
  }
  char* end;
  long watch_pid = strtol(argv[1], NULL, 10);
  long delay_us = strtol(argv[2], &end, 10);
  if (*end != '\0' || delay_us < 0 || delay_us > 10000000 || watch_pid <= 0) {
    fprintf(stderr, "delay_link: bad WATCH_PID or DELAY_US\n");
    return 2;
  }
  int count = (argc - 3) / 4;
  delay_link_t* links = calloc((size_t)count, sizeof *links);
  struct pollfd* pfds = calloc((size_t)(2 * count + 1), sizeof *pfds);
  if (links == NULL || pfds == NULL) {
    die("calloc");
  }
  int watch_fd = (int)syscall(SYS_pidfd_open, (pid_t)watch_pid, 0);
  if (watch_fd < 0) {
    die("pidfd_open");
  }
  int home_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home_ns < 0) {
    die("/proc/self/ns/net");
  }
  for (int i = 0; i < count; i++) {
    char** arg = &argv[3 + 4 * i];
    links[i].delay_ns = (uint64_t)delay_us * 1000u;
    for (int side = 0; side < 2; side++) {
      links[i].fds[side] = open_tap(arg[2 * side], arg[2 * side + 1], home_ns);
      pfds[2 * i + side] = (struct pollfd){.fd = links[i].fds[side], .events = POLLIN};
    }
  }
  pfds[2 * count] = (struct pollfd){.fd = watch_fd, .events = POLLIN};
  close(home_ns);

  /* Every device exists: the caller may configure them now. The copy goes
   * on in a child that holds none of the caller's pipes open. */
  pid_t child = fork();
  if (child < 0) {
    die("fork");
  }
  if (child > 0) {
    return 0;
  }
  setsid();
  int null_fd = open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3 && null_fd >= 0; fd++) {
    dup2(null_fd, fd);
  }
  if (null_fd > 2) {
    close(null_fd);
  }
  /* Wake-ups on time, not up to 50 us late (the default timer slack), and
   * ahead of ordinary processes when we may (root; not in a user
   * namespace, where this fails and the default policy stays). */
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  struct sched_param param = {.sched_priority = 10};
  sched_setscheduler(0, SCHED_FIFO, &param);
  run(links, count, pfds);
  return 0;
}
