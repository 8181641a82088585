/* SPDX-License-Identifier: MIT */
/* The background thread (see background.h). */
#include "background.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The thread's nice value. Formatting tens of megabytes on a 2-core machine
 * would otherwise push the loop's thread off a core for milliseconds at a
 * time. Not SCHED_IDLE: on a host whose cores are all busy, a scrape would
 * then get almost no CPU and time out; at nice 10 it still gets a tenth. */
#define IR_BACKGROUND_NICE 10

struct ir_background_s {
  pthread_t thread;
  sem_t wake;                           /* Posted once per hand-over, and to stop. */
  _Atomic(ir_background_item_t*) inbox; /* Pushed by the loop, newest first. */
  atomic_bool stopping;
};

/* Takes everything handed over so far, oldest first. */
static ir_background_item_t* ir__take_inbox(ir_background_t* bg) {
  ir_background_item_t* newest = atomic_exchange(&bg->inbox, NULL);
  ir_background_item_t* oldest = NULL;
  while (newest != NULL) {
    ir_background_item_t* next = newest->next;
    newest->next = oldest;
    oldest = newest;
    newest = next;
  }
  return oldest;
}

static void* ir__background_main(void* arg) {
  ir_background_t* bg = arg;
  /* Linux: per thread, by its id. A failure leaves the default. */
  (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), IR_BACKGROUND_NICE);
  for (;;) {
    while (sem_wait(&bg->wake) != 0 && errno == EINTR) {
    }
    bool stopping = atomic_load(&bg->stopping);
    ir_background_item_t* item = ir__take_inbox(bg);
    while (item != NULL) {
      ir_background_item_t* next = item->next; /* `run` may free the item. */
      item->run(item, stopping);
      item = next;
    }
    if (stopping) {
      return NULL;
    }
  }
}

int ir_background_start(ir_background_t** out) {
  ir_background_t* bg = calloc(1, sizeof(*bg));
  if (bg == NULL) {
    return -ENOMEM;
  }
  atomic_init(&bg->inbox, NULL);
  atomic_init(&bg->stopping, false);
  if (sem_init(&bg->wake, 0, 0) != 0) {
    int err = -errno;
    free(bg);
    return err;
  }
  int err = pthread_create(&bg->thread, NULL, ir__background_main, bg);
  if (err != 0) {
    sem_destroy(&bg->wake);
    free(bg);
    return -err;
  }
  *out = bg;
  return 0;
}

void ir_background_submit(ir_background_t* bg, ir_background_item_t* item) {
  ir_background_item_t* head = atomic_load(&bg->inbox);
  do {
    item->next = head;
  } while (!atomic_compare_exchange_weak(&bg->inbox, &head, item));
  (void)sem_post(&bg->wake);
}

void ir_background_stop(ir_background_t* bg) {
  atomic_store(&bg->stopping, true);
  (void)sem_post(&bg->wake);
  (void)pthread_join(bg->thread, NULL);
  sem_destroy(&bg->wake);
  free(bg);
}
