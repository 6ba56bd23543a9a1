/*
 * A minimal C host: meters one exchange and prints its usage record as JSON.
 *
 *   meter RESPONSE_FILE [REQUEST_FILE] [OPTIONS_JSON]
 *
 * The response (an SSE stream or a JSON body) is fed as a proxy would see it, in 4 KiB reads.
 *
 * Build against the shared library (see ffi/README.md, "Linking": the loader wants the
 * library under its SONAME, libusagetap.so.0.1.0):
 *   cargo build --release -p usagetap-ffi
 *   ln -sf libusagetap.so target/release/libusagetap.so.0.1.0
 *   cc -std=c11 -Wall -Wextra -Wpedantic -Iinclude examples/c/meter.c \
 *      -Ltarget/release -lusagetap -Wl,-rpath,"$PWD/target/release" -o meter
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usagetap.h"

static int fail(const char *what, usagetap_result r, usagetap_str detail) {
  usagetap_str s = usagetap_result_str(r);
  fprintf(stderr, "meter: %s: %.*s: %.*s\n", what, (int)s.len, s.data, (int)detail.len, detail.data);
  return 1;
}

/* Reads a whole file; the caller frees it. */
static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      uint8_t *bigger = realloc(buf, cap *= 2);
      if (!bigger) free(buf);
      buf = bigger;
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: %s RESPONSE_FILE [REQUEST_FILE] [OPTIONS_JSON]\n", argv[0]);
    return 2;
  }
  const char *options = argc > 3 ? argv[3] : NULL;
  usagetap_meter *meter = NULL;
  usagetap_result r = usagetap_meter_new(options, options ? strlen(options) : 0, &meter);
  if (r != USAGETAP_RESULT_OK) return fail("options", r, usagetap_thread_last_error());

  int status = 1;
  if (argc > 2) {
    size_t len = 0;
    uint8_t *request = slurp(argv[2], &len);
    if (!request) {
      perror(argv[2]);
      goto out;
    }
    r = usagetap_meter_request(meter, request, len);
    free(request);
    /* An unreadable request is not fatal: the record will say `request_unparsed`. */
    if (r != USAGETAP_RESULT_OK) fail("request (continuing)", r, usagetap_meter_last_error(meter));
  }

  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    goto out;
  }
  uint8_t chunk[4096];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
    r = usagetap_meter_feed(meter, chunk, got);
    if (r != USAGETAP_RESULT_OK) {
      fclose(f);
      fail("feed", r, usagetap_meter_last_error(meter));
      goto out;
    }
  }
  fclose(f);

  usagetap_record record;
  r = usagetap_meter_finish(meter, &record);
  if (r != USAGETAP_RESULT_OK) {
    fail("finish", r, usagetap_meter_last_error(meter));
    goto out;
  }
  usagetap_str json;
  if (usagetap_meter_record_json(meter, &json) == USAGETAP_RESULT_OK)
    printf("%.*s\n", (int)json.len, json.data);
  if (record.flags & USAGETAP_FLAG_TRUNCATED) fprintf(stderr, "meter: the response was cut short\n");
  status = 0;
out:
  usagetap_meter_free(meter); /* the record's strings and JSON go with it */
  return status;
}
