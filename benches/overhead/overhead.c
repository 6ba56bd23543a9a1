/*
 * Per-call cost of the C ABI, for `cargo bench -p usagetap-benches --bench overhead` (which
 * builds and runs this file): prints "exchange NS" and "feed NS", each the least of 15 batches.
 *
 *   overhead REQUEST_FILE RESPONSE_FILE CHUNK_FILE
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "usagetap.h"

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static const uint8_t *req, *resp, *chunk;
static size_t req_len, resp_len, chunk_len;

static void exchange(void) {
  usagetap_meter *m = NULL;
  usagetap_record rec;
  if (usagetap_meter_new(NULL, 0, &m) != USAGETAP_RESULT_OK) exit(1);
  usagetap_meter_request(m, req, req_len);
  usagetap_meter_feed(m, resp, resp_len);
  if (usagetap_meter_finish(m, &rec) != USAGETAP_RESULT_OK || rec.total_tokens == 0) exit(1);
  usagetap_meter_free(m);
}

static double least_ns(int feed, long iters) {
  double least = 0;
  for (int b = 0; b < 15; b++) {
    usagetap_meter *m = NULL;
    if (feed && usagetap_meter_new(NULL, 0, &m) != USAGETAP_RESULT_OK) exit(1);
    double t = now();
    for (long i = 0; i < iters; i++) {
      if (feed)
        usagetap_meter_feed(m, chunk, chunk_len);
      else
        exchange();
    }
    double ns = (now() - t) / (double)iters;
    if (b == 0 || ns < least) least = ns;
    usagetap_meter_free(m);
  }
  return least;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s REQUEST_FILE RESPONSE_FILE CHUNK_FILE\n", argv[0]);
    return 2;
  }
  req = slurp(argv[1], &req_len);
  resp = slurp(argv[2], &resp_len);
  chunk = slurp(argv[3], &chunk_len);
  if (!req || !resp || !chunk) return 2;
  exchange();
  printf("exchange %.1f\n", least_ns(0, 20000));
  printf("feed %.1f\n", least_ns(1, 200000));
  return 0;
}
