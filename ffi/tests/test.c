/*
 * C test of the usagetap C ABI: real corpus exchanges fed in 1..7-byte pieces and checked
 * against the service's reported usage; chargeback on corpus data (APIM envelopes, one cut; the
 * include_usage rewrite; the usage-chunk filter on recorded streams fed in 1..7-byte pieces);
 * plus every function's misuse cases.
 *
 * usage: test CASES_FILE CHARGEBACK_FILE   (both from ffi/tests/corpus_cases.py)
 *        test --leak-one-meter   (leaks on purpose: valgrind must fail it)
 *
 * Built with -std=c11 -Wall -Wextra -Wpedantic -Werror and run under valgrind by ffi/test.sh.
 * Ends with "N passed, M failed"; exits non-zero on any failure.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usagetap.h"

static unsigned passed, failed;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (cond) {                                            \
      passed++;                                            \
    } else {                                               \
      failed++;                                            \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                        \
      fputc('\n', stderr);                                 \
    }                                                      \
  } while (0)

#define OK USAGETAP_RESULT_OK

static int str_eq(usagetap_str s, const char *want) {
  size_t n = strlen(want);
  return s.len == n && (n == 0 || memcmp(s.data, want, n) == 0);
}

static int str_contains(usagetap_str s, const char *needle) {
  size_t n = strlen(needle);
  if (n > s.len) return 0;
  for (size_t i = 0; i + n <= s.len; i++)
    if (memcmp(s.data + i, needle, n) == 0) return 1;
  return 0;
}

/* A small deterministic generator for piece sizes. */
static uint32_t rng_state = 12345u;
static size_t piece_size(void) {
  rng_state = rng_state * 1103515245u + 12345u;
  return 1 + (size_t)((rng_state >> 16) % 7u);
}

static usagetap_meter *new_meter(const char *options) {
  usagetap_meter *m = NULL;
  usagetap_result r = usagetap_meter_new(options, options ? strlen(options) : 0, &m);
  CHECK(r == OK && m != NULL, "usagetap_meter_new: %u", (unsigned)r);
  return m;
}

static usagetap_result feed_pieces(usagetap_meter *m, const uint8_t *data, size_t len) {
  size_t at = 0;
  while (at < len) {
    size_t n = piece_size();
    if (n > len - at) n = len - at;
    usagetap_result r = usagetap_meter_feed(m, data + at, n);
    if (r != OK) return r;
    at += n;
  }
  return OK;
}

/* ---- version, static strings ---------------------------------------------------------- */

static void test_version(void) {
  char want[64];
  snprintf(want, sizeof want, "%d.%d.%d", USAGETAP_VERSION_MAJOR, USAGETAP_VERSION_MINOR,
           USAGETAP_VERSION_PATCH);
  usagetap_str v = usagetap_version();
  CHECK(str_eq(v, want), "usagetap_version() is %.*s, the header's macros say %s", (int)v.len,
        v.data, want);
  CHECK(str_eq(v, USAGETAP_VERSION), "USAGETAP_VERSION is %s", USAGETAP_VERSION);
}

static void test_static_strings(void) {
  for (uint32_t code = USAGETAP_RESULT_OK; code <= USAGETAP_RESULT_NOT_AN_ENVELOPE; code++) {
    usagetap_str s = usagetap_result_str(code);
    CHECK(s.len > 0 && !str_eq(s, "unknown result code"), "result_str(%u)", code);
  }
  CHECK(str_eq(usagetap_result_str(USAGETAP_RESULT_OK), "ok"), "ok");
  CHECK(str_eq(usagetap_result_str(0), "unknown result code"), "result 0");
  CHECK(str_eq(usagetap_result_str(6999), "unknown result code"), "result 6999");
  CHECK(str_eq(usagetap_result_str(USAGETAP_RESULT_NOT_AN_ENVELOPE + 1), "unknown result code"),
        "result after the last");
  CHECK(str_eq(usagetap_flag_name(USAGETAP_FLAG_TRUNCATED), "truncated"), "flag name");
  CHECK(str_eq(usagetap_flag_name(USAGETAP_FLAG_NO_USAGE_REPORTED), "no_usage_reported"),
        "flag name");
  CHECK(str_eq(usagetap_flag_name(USAGETAP_FLAG_RESPONSE_NOT_FINISHED), "response_not_finished"),
        "flag name");
  CHECK(str_eq(usagetap_flag_name(USAGETAP_FLAG_TOO_MANY_IMAGES), "too_many_images"),
        "flag name");
  CHECK(usagetap_flag_name(0).len == 0, "flag 0");
  CHECK(usagetap_flag_name(3).len == 0, "two flags");
  CHECK(usagetap_flag_name(0x80000000u).len == 0, "unknown flag");
}

/* ---- the corpus ------------------------------------------------------------------------ */

typedef struct {
  char id[512];
  int stream;
  long long prompt, completion, total;
  uint8_t *request;
  size_t request_len;
  uint8_t *response;
  size_t response_len;
} test_case;

/* Reads the next case; 0 at the end. The caller frees request and response. */
static int read_case(FILE *f, test_case *c) {
  char line[1024];
  if (!fgets(line, sizeof line, f)) return 0;
  size_t req_len = 0, resp_len = 0;
  if (sscanf(line, "case %511s %d %lld %lld %lld %zu %zu", c->id, &c->stream, &c->prompt,
             &c->completion, &c->total, &req_len, &resp_len) != 7) {
    fprintf(stderr, "bad case line: %s\n", line);
    exit(2);
  }
  c->request = malloc(req_len + 1);
  c->response = malloc(resp_len + 1);
  if (!c->request || !c->response) exit(2);
  if (fread(c->request, 1, req_len, f) != req_len ||
      fread(c->response, 1, resp_len, f) != resp_len || fgetc(f) != '\n') {
    fprintf(stderr, "short case %s\n", c->id);
    exit(2);
  }
  c->request_len = req_len;
  c->response_len = resp_len;
  return 1;
}

static unsigned matched_streams, matched_bodies, computed_streams, cases_seen;

static void check_record(const test_case *c, const usagetap_meter *m, const usagetap_record *rec,
                         const char *how) {
  if (c->prompt >= 0) {
    int ok = (long long)rec->prompt_tokens == c->prompt &&
             (c->completion < 0 || (long long)rec->completion_tokens == c->completion) &&
             (c->total < 0 || (long long)rec->total_tokens == c->total);
    CHECK(ok, "%s (%s): got %" PRIu64 "/%" PRIu64 "/%" PRIu64 ", reported %lld/%lld/%lld", c->id,
          how, rec->prompt_tokens, rec->completion_tokens, rec->total_tokens, c->prompt,
          c->completion, c->total);
    CHECK(rec->source == USAGETAP_SOURCE_REPORTED, "%s: source %u", c->id, rec->source);
    CHECK(rec->present & USAGETAP_PRESENT_REPORTED_PROMPT_TOKENS, "%s: present", c->id);
    CHECK((long long)rec->reported_prompt_tokens == c->prompt, "%s: reported_prompt", c->id);
    if (ok) {
      if (c->stream)
        matched_streams++;
      else
        matched_bodies++;
    }
  } else {
    CHECK(rec->source == USAGETAP_SOURCE_COMPUTED, "%s: source %u", c->id, rec->source);
    CHECK(rec->flags & USAGETAP_FLAG_NO_USAGE_REPORTED, "%s: flags %u", c->id, rec->flags);
    CHECK(rec->completion_tokens > 0 && rec->prompt_tokens > 0, "%s: computed %" PRIu64 "/%" PRIu64,
          c->id, rec->prompt_tokens, rec->completion_tokens);
    CHECK(rec->total_tokens == rec->prompt_tokens + rec->completion_tokens, "%s: total", c->id);
    if (c->stream) computed_streams++;
  }
  CHECK(rec->stream == (uint32_t)c->stream, "%s: stream %u", c->id, rec->stream);
  CHECK(rec->status == USAGETAP_STATUS_COMPLETE, "%s: status %u", c->id, rec->status);
  CHECK(rec->model.len > 0, "%s: model", c->id);

  /* The JSON carries the same numbers. */
  usagetap_str json = {0};
  CHECK(usagetap_meter_record_json(m, &json) == OK, "%s: json", c->id);
  char want[64];
  snprintf(want, sizeof want, "\"prompt_tokens\":%" PRIu64 ",", rec->prompt_tokens);
  CHECK(json.len > 2 && json.data[0] == '{' && json.data[json.len - 1] == '}' &&
            str_contains(json, want),
        "%s: json %.*s", c->id, (int)(json.len > 200 ? 200 : json.len), json.data);
}

static void test_corpus(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  test_case c;
  while (read_case(f, &c)) {
    cases_seen++;
    usagetap_record rec;
    usagetap_meter *m = new_meter(NULL);
    if (cases_seen % 4 == 0) {
      /* The one-shot call. */
      usagetap_result r = usagetap_meter_exchange(m, c.request, c.request_len, c.response,
                                                  c.response_len, &rec);
      CHECK(r == OK, "%s: exchange %u", c.id, (unsigned)r);
      if (r == OK) check_record(&c, m, &rec, "exchange");
    } else {
      /* request, then the response in 1..7-byte pieces, then finish. */
      usagetap_result r = usagetap_meter_request(m, c.request, c.request_len);
      CHECK(r == OK, "%s: request %u: %.*s", c.id, (unsigned)r,
            (int)usagetap_meter_last_error(m).len, usagetap_meter_last_error(m).data);
      r = feed_pieces(m, c.response, c.response_len);
      CHECK(r == OK, "%s: feed %u", c.id, (unsigned)r);
      r = usagetap_meter_finish(m, &rec);
      CHECK(r == OK, "%s: finish %u", c.id, (unsigned)r);
      if (r == OK) check_record(&c, m, &rec, "pieces");
    }
    usagetap_meter_free(m);

    /* A stream cut in the middle is truncated. */
    if (c.stream && cases_seen % 5 == 1) {
      m = new_meter(NULL);
      CHECK(feed_pieces(m, c.response, c.response_len / 2) == OK, "%s: cut feed", c.id);
      CHECK(usagetap_meter_finish(m, &rec) == OK, "%s: cut finish", c.id);
      CHECK(rec.status == USAGETAP_STATUS_TRUNCATED && (rec.flags & USAGETAP_FLAG_TRUNCATED),
            "%s: cut stream: status %u flags %u", c.id, rec.status, rec.flags);
      usagetap_meter_free(m);
    }
    free(c.request);
    free(c.response);
  }
  fclose(f);
  CHECK(cases_seen >= 40, "only %u corpus cases", cases_seen);
}

/* ---- misuse ----------------------------------------------------------------------------- */

static const char STREAM[] =
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":1,"
    "\"total_tokens\":9}}\n\n"
    "data: [DONE]\n\n";

static void test_null_and_misuse(void) {
  usagetap_record rec;
  usagetap_str s = {0};
  uint64_t n = 0;

  /* NULL handles and out-params. */
  usagetap_meter_free(NULL);
  usagetap_meter_free(NULL); /* twice: still a no-op */
  CHECK(usagetap_meter_new(NULL, 0, NULL) == USAGETAP_RESULT_NULL_PARAMETER, "new NULL out");
  CHECK(usagetap_meter_request(NULL, NULL, 0) == USAGETAP_RESULT_NULL_PARAMETER, "request NULL");
  CHECK(usagetap_meter_feed(NULL, (const uint8_t *)"x", 1) == USAGETAP_RESULT_NULL_PARAMETER,
        "feed NULL");
  CHECK(usagetap_meter_finish(NULL, &rec) == USAGETAP_RESULT_NULL_PARAMETER, "finish NULL");
  CHECK(usagetap_meter_exchange(NULL, NULL, 0, NULL, 0, &rec) == USAGETAP_RESULT_NULL_PARAMETER,
        "exchange NULL");
  CHECK(usagetap_meter_record(NULL, &rec) == USAGETAP_RESULT_NULL_PARAMETER, "record NULL");
  CHECK(usagetap_meter_record_json(NULL, &s) == USAGETAP_RESULT_NULL_PARAMETER, "json NULL");
  CHECK(usagetap_meter_last_error(NULL).len == 0, "last_error NULL");
  CHECK(usagetap_count_tokens("a", 1, NULL, 0, NULL) == USAGETAP_RESULT_NULL_PARAMETER,
        "count NULL out");
  CHECK(usagetap_count_tokens(NULL, 3, NULL, 0, &n) == USAGETAP_RESULT_NULL_PARAMETER,
        "count NULL text with a length");

  /* Options. */
  usagetap_meter *m = (usagetap_meter *)&n; /* must stay untouched on failure */
  CHECK(usagetap_meter_new("{", 1, &m) == USAGETAP_RESULT_INVALID_JSON, "bad json");
  CHECK(m == (usagetap_meter *)&n, "meter_out written on failure");
  CHECK(usagetap_thread_last_error().len > 0, "thread last error");
  const char *typo = "{\"modle\":\"gpt-4o\"}";
  CHECK(usagetap_meter_new(typo, strlen(typo), &m) == USAGETAP_RESULT_INVALID_OPTIONS, "typo");
  CHECK(str_contains(usagetap_thread_last_error(), "modle"), "typo message");
  const char *bad_ep = "{\"endpoint\":\"/v1/images/generations\"}";
  CHECK(usagetap_meter_new(bad_ep, strlen(bad_ep), &m) == USAGETAP_RESULT_INVALID_OPTIONS,
        "endpoint");
  const char *zero = "{\"limits\":{\"max_choices\":0}}";
  CHECK(usagetap_meter_new(zero, strlen(zero), &m) == USAGETAP_RESULT_INVALID_OPTIONS, "zero");
  const char bad_utf8_opts[] = "{\"model\":\"\xff\"}";
  CHECK(usagetap_meter_new(bad_utf8_opts, sizeof bad_utf8_opts - 1, &m) ==
            USAGETAP_RESULT_INVALID_UTF8,
        "options utf8");
  CHECK(usagetap_meter_new(NULL, 5, &m) == USAGETAP_RESULT_NULL_PARAMETER, "options NULL len");

  /* A meter used wrongly. */
  m = new_meter("{\"model\":\"gpt-4o-mini\",\"reconcile\":true}");
  CHECK(usagetap_meter_record_json(m, &s) == USAGETAP_RESULT_NOT_FINISHED, "json before finish");
  CHECK(usagetap_meter_record(m, &rec) == USAGETAP_RESULT_NOT_FINISHED, "record before finish");
  CHECK(usagetap_meter_feed(m, NULL, 0) == OK, "(NULL, 0) is empty");
  CHECK(usagetap_meter_feed(m, NULL, 4) == USAGETAP_RESULT_NULL_PARAMETER, "NULL with length");
  CHECK(usagetap_meter_last_error(m).len > 0, "last error after NULL");
  CHECK(usagetap_meter_finish(m, NULL) == USAGETAP_RESULT_NULL_PARAMETER, "finish NULL out");
  CHECK(usagetap_meter_record(m, NULL) == USAGETAP_RESULT_NULL_PARAMETER, "record NULL out");
  CHECK(usagetap_meter_record_json(m, NULL) == USAGETAP_RESULT_NULL_PARAMETER, "json NULL out");
  const uint8_t bad_req[] = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}";
  CHECK(usagetap_meter_request(m, bad_req, sizeof bad_req - 1) == USAGETAP_RESULT_INVALID_UTF8,
        "request utf8");
  CHECK(str_contains(usagetap_meter_last_error(m), "UTF-8"), "utf8 message");
  CHECK(usagetap_meter_request(m, (const uint8_t *)"[1]", 3) == USAGETAP_RESULT_INVALID_REQUEST,
        "request shape");
  CHECK(usagetap_meter_request(m, NULL, 0) == USAGETAP_RESULT_INVALID_JSON, "empty request");
  /* Invalid UTF-8 inside the stream is not an error. */
  const uint8_t bad_stream[] =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xff\xfe ok\"}}]}\n\n";
  CHECK(usagetap_meter_feed(m, bad_stream, sizeof bad_stream - 1) == OK, "stream utf8");
  CHECK(feed_pieces(m, (const uint8_t *)STREAM, strlen(STREAM)) == OK, "stream");
  CHECK(usagetap_meter_finish(m, &rec) == OK, "finish");
  CHECK(rec.flags & USAGETAP_FLAG_REQUEST_UNPARSED, "request_unparsed flag %u", rec.flags);
  CHECK(rec.total_tokens == 9 && rec.source == USAGETAP_SOURCE_REPORTED, "total %" PRIu64,
        rec.total_tokens);
  CHECK(rec.present & USAGETAP_PRESENT_COMPUTED_COMPLETION_TOKENS, "reconcile computed");
  CHECK(str_eq(rec.model, "gpt-4o-mini") && str_eq(rec.response_id, "c1"), "strings");
  CHECK(rec.deployment.data == NULL && rec.deployment.len == 0, "absent string");
  /* After finish. */
  CHECK(usagetap_meter_feed(m, (const uint8_t *)"x", 1) == USAGETAP_RESULT_FINISHED, "feed after");
  CHECK(str_contains(usagetap_meter_last_error(m), "finished"), "finished message");
  CHECK(usagetap_meter_request(m, (const uint8_t *)"{}", 2) == USAGETAP_RESULT_FINISHED,
        "request after");
  usagetap_record again;
  memset(&again, 0xAB, sizeof again);
  CHECK(usagetap_meter_finish(m, &again) == USAGETAP_RESULT_FINISHED, "finish twice");
  CHECK(again.prompt_tokens == 0xABABABABABABABABull, "record_out written on failure");
  CHECK(usagetap_meter_exchange(m, NULL, 0, NULL, 0, &again) == USAGETAP_RESULT_FINISHED,
        "exchange after");
  CHECK(usagetap_meter_record(m, &again) == OK && again.total_tokens == 9 &&
            again.model.data == rec.model.data,
        "record again");
  CHECK(usagetap_meter_record_json(m, &s) == OK && str_contains(s, "\"request_unparsed\""),
        "json flags");
  usagetap_meter_free(m);

  /* Nothing fed. */
  m = new_meter("null");
  CHECK(usagetap_meter_finish(m, &rec) == OK && (rec.flags & USAGETAP_FLAG_EMPTY_RESPONSE),
        "empty response");
  usagetap_meter_free(m);

  /* Options are applied: deployment map, endpoint from a URL path. */
  const char *opts =
      "{\"deployment\":\"chat-prod\",\"deployments\":{\"chat-prod\":\"gpt-4\"},"
      "\"endpoint\":\"/openai/deployments/chat-prod/chat/completions?api-version=2024-10-21\","
      "\"limits\":{\"max_line_bytes\":65536,\"max_body_bytes\":1048576,\"max_text_bytes\":1048576,"
      "\"max_choices\":8,\"max_tool_calls\":16,\"max_json_depth\":32,\"max_images\":4,"
      "\"max_image_base64\":4096}}";
  m = new_meter(opts);
  const char *body =
      "data: {\"id\":\"c9\",\"model\":\"chat-prod\",\"choices\":[{\"index\":0,\"delta\":"
      "{\"content\":\"hello world\"}}]}\n\ndata: [DONE]\n\n";
  CHECK(usagetap_meter_feed(m, (const uint8_t *)body, strlen(body)) == OK, "feed");
  CHECK(usagetap_meter_finish(m, &rec) == OK, "finish");
  CHECK(rec.encoding == USAGETAP_ENCODING_CL100K_BASE && rec.completion_tokens == 2 &&
            rec.source == USAGETAP_SOURCE_COMPUTED &&
            rec.endpoint == USAGETAP_ENDPOINT_CHAT_COMPLETIONS && str_eq(rec.deployment, "chat-prod"),
        "options: encoding %u completion %" PRIu64, rec.encoding, rec.completion_tokens);
  usagetap_meter_free(m);
}

/* ---- chargeback: envelopes, the include_usage rewrite, the usage-chunk filter --------------- */

/* The consumer-hash secret; ffi/tests/corpus_cases.py computes the expected ids with it. */
static const char SECRET[] = "usagetap-ffi-test-secret";

static unsigned envelopes_seen, envelopes_cut, rewrites_seen, filters_seen;

/* Reads exactly n bytes into a new buffer (the caller frees it). */
static uint8_t *read_blob(FILE *f, size_t n, const char *id) {
  uint8_t *b = malloc(n + 1);
  if (!b || fread(b, 1, n, f) != n) {
    fprintf(stderr, "short chargeback case %s\n", id);
    exit(2);
  }
  return b;
}

static int is_lower_hex(usagetap_str s) {
  for (size_t i = 0; i < s.len; i++) {
    char c = s.data[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
  }
  return 1;
}

static int bytes_contain(const uint8_t *hay, size_t n, const uint8_t *needle, size_t k) {
  for (size_t i = 0; k <= n && i + k <= n; i++)
    if (memcmp(hay + i, needle, k) == 0) return 1;
  return 0;
}

static void check_envelope(const char *line, FILE *f) {
  char id[512], event_time[128], operation[128], consumer[128];
  int cut = 0;
  long long prompt, completion, total;
  size_t key_len = 0, env_len = 0;
  if (sscanf(line, "envelope %511s %d %lld %lld %lld %127s %127s %127s %zu %zu", id, &cut, &prompt,
             &completion, &total, event_time, operation, consumer, &key_len, &env_len) != 10) {
    fprintf(stderr, "bad envelope line: %s\n", line);
    exit(2);
  }
  uint8_t *key = read_blob(f, key_len, id);
  uint8_t *env = read_blob(f, env_len, id);
  envelopes_seen++;

  usagetap_meter *m = NULL;
  usagetap_result r =
      usagetap_meter_envelope(NULL, 0, (const uint8_t *)SECRET, strlen(SECRET), env, env_len, &m);
  CHECK(r == OK && m != NULL, "%s: meter_envelope %u: %.*s", id, (unsigned)r,
        (int)usagetap_thread_last_error().len, usagetap_thread_last_error().data);
  if (r != OK) goto out;

  usagetap_record rec;
  CHECK(usagetap_meter_record(m, &rec) == OK, "%s: record", id);
  if (cut) {
    envelopes_cut++;
    CHECK(rec.flags & USAGETAP_FLAG_TRUNCATED, "%s: cut envelope not flagged: flags %u status %u",
          id, rec.flags, rec.status);
  } else {
    CHECK((long long)rec.prompt_tokens == prompt &&
              (completion < 0 || (long long)rec.completion_tokens == completion) &&
              (total < 0 || (long long)rec.total_tokens == total),
          "%s: envelope got %" PRIu64 "/%" PRIu64 "/%" PRIu64 ", reported %lld/%lld/%lld", id,
          rec.prompt_tokens, rec.completion_tokens, rec.total_tokens, prompt, completion, total);
    CHECK(rec.source == USAGETAP_SOURCE_REPORTED && rec.status == USAGETAP_STATUS_COMPLETE &&
              !(rec.flags & USAGETAP_FLAG_TRUNCATED),
          "%s: source %u status %u flags %u", id, rec.source, rec.status, rec.flags);
  }

  usagetap_envelope_info info;
  CHECK(usagetap_meter_envelope_info(m, &info) == OK, "%s: envelope_info", id);
  CHECK(info.consumer.len == 32 && is_lower_hex(info.consumer), "%s: consumer %.*s", id,
        (int)info.consumer.len, info.consumer.data);
  CHECK(str_eq(info.consumer, consumer), "%s: consumer %.*s, HMAC oracle %s", id,
        (int)info.consumer.len, info.consumer.data, consumer);
  CHECK(!bytes_contain((const uint8_t *)info.consumer.data, info.consumer.len, key, key_len) &&
            !bytes_contain(key, key_len, (const uint8_t *)info.consumer.data, info.consumer.len),
        "%s: consumer id holds the raw key", id);
  CHECK(str_eq(info.event_time, event_time), "%s: eventTime %.*s", id, (int)info.event_time.len,
        info.event_time.data);
  CHECK(str_eq(info.api_operation, operation), "%s: apiOperation", id);

  usagetap_str json = {0};
  CHECK(usagetap_meter_record_json(m, &json) == OK && json.len > 2 && json.data[0] == '{', "%s: json",
        id);
  CHECK(!bytes_contain((const uint8_t *)json.data, json.len, key, key_len),
        "%s: the record JSON holds the raw key", id);
  /* Finished: nothing more goes in. */
  CHECK(usagetap_meter_feed(m, (const uint8_t *)"x", 1) == USAGETAP_RESULT_FINISHED, "%s: feed", id);
  CHECK(usagetap_meter_finish(m, &rec) == USAGETAP_RESULT_FINISHED, "%s: finish", id);
  usagetap_meter_free(m);
out:
  free(key);
  free(env);
}

static void check_rewrite(const char *line, FILE *f) {
  char id[512];
  int changed = 0, asked = 0;
  size_t body_len = 0, want_len = 0;
  if (sscanf(line, "rewrite %511s %d %d %zu %zu", id, &changed, &asked, &body_len, &want_len) != 5) {
    fprintf(stderr, "bad rewrite line: %s\n", line);
    exit(2);
  }
  uint8_t *body = read_blob(f, body_len, id);
  uint8_t *want = read_blob(f, want_len, id);
  rewrites_seen++;

  usagetap_bytes out = {NULL, 0};
  uint32_t got_changed = 9, got_asked = 9;
  usagetap_result r = usagetap_rewrite_include_usage(body, body_len, &out, &got_changed, &got_asked);
  CHECK(r == OK, "%s: rewrite %u", id, (unsigned)r);
  CHECK(got_changed == (uint32_t)changed && got_asked == (uint32_t)asked,
        "%s: changed %u client_asked %u, want %d %d", id, got_changed, got_asked, changed, asked);
  CHECK(out.len == want_len && memcmp(out.data, want, want_len) == 0, "%s: body %.*s", id,
        (int)out.len, (const char *)out.data);
  CHECK(out.data != body, "%s: the body is a new buffer even when unchanged", id);
  if (changed) {
    static const char field[] = "\"stream_options\":{\"include_usage\":true}";
    CHECK(bytes_contain(out.data, out.len, (const uint8_t *)field, strlen(field)), "%s: field", id);
    /* Valid JSON and a valid request. */
    usagetap_meter *m = new_meter(NULL);
    CHECK(usagetap_meter_request(m, out.data, out.len) == OK, "%s: rewritten body rejected: %.*s",
          id, (int)usagetap_meter_last_error(m).len, usagetap_meter_last_error(m).data);
    usagetap_meter_free(m);
    /* Rewriting again changes nothing: the client now asks. */
    usagetap_bytes again = {NULL, 0};
    CHECK(usagetap_rewrite_include_usage(out.data, out.len, &again, &got_changed, &got_asked) == OK &&
              got_changed == 0 && got_asked == 1 && again.len == out.len,
          "%s: idempotent", id);
    usagetap_bytes_free(&again);
  }
  usagetap_bytes_free(&out);
  CHECK(out.data == NULL && out.len == 0, "%s: bytes_free resets", id);
  usagetap_bytes_free(&out); /* a no-op now */
  free(body);
  free(want);
}

/* Appends a filter's output to a growing buffer. */
static void append(uint8_t **buf, size_t *len, size_t *cap, usagetap_slice s) {
  if (s.len == 0) return;
  if (*len + s.len > *cap) {
    *cap = (*len + s.len) * 2;
    uint8_t *grown = realloc(*buf, *cap);
    if (!grown) exit(2);
    *buf = grown;
  }
  memcpy(*buf + *len, s.data, s.len);
  *len += s.len;
}

static void check_filter(const char *line, FILE *f) {
  char id[512];
  unsigned long long want_removed = 0;
  size_t in_len = 0, want_len = 0;
  if (sscanf(line, "filter %511s %llu %zu %zu", id, &want_removed, &in_len, &want_len) != 4) {
    fprintf(stderr, "bad filter line: %s\n", line);
    exit(2);
  }
  uint8_t *in = read_blob(f, in_len, id);
  uint8_t *want = read_blob(f, want_len, id);
  filters_seen++;

  /* A gateway: the meter reads the service's stream, the client gets the filtered one. */
  usagetap_usage_filter *filter = NULL;
  CHECK(usagetap_usage_filter_new(0, &filter) == OK && filter != NULL, "%s: filter_new", id);
  usagetap_meter *m = new_meter(NULL);
  uint8_t *got = NULL;
  size_t got_len = 0, got_cap = 0;
  usagetap_slice s;
  int fed = 1;
  for (size_t at = 0; at < in_len && fed;) {
    size_t n = piece_size();
    if (n > in_len - at) n = in_len - at;
    fed = usagetap_usage_filter_feed(filter, in + at, n, &s) == OK;
    if (fed) append(&got, &got_len, &got_cap, s);
    fed = fed && usagetap_meter_feed(m, in + at, n) == OK;
    at += n;
  }
  CHECK(fed, "%s: filter or meter feed", id);
  CHECK(usagetap_usage_filter_finish(filter, &s) == OK, "%s: filter_finish", id);
  append(&got, &got_len, &got_cap, s);
  CHECK(got_len == want_len && (want_len == 0 || memcmp(got, want, want_len) == 0),
        "%s: filtered stream differs (%zu bytes, want %zu)", id, got_len, want_len);
  uint64_t removed = 0;
  CHECK(usagetap_usage_filter_removed(filter, &removed) == OK && removed == want_removed,
        "%s: removed %" PRIu64, id, removed);
  CHECK(usagetap_usage_filter_feed(filter, in, 1, &s) == USAGETAP_RESULT_FINISHED, "%s: after", id);
  usagetap_usage_filter_free(filter);

  usagetap_record rec;
  CHECK(usagetap_meter_finish(m, &rec) == OK && rec.source == USAGETAP_SOURCE_REPORTED,
        "%s: the meter reads the usage the client does not see: source %u", id, rec.source);
  usagetap_meter_free(m);
  free(got);
  free(in);
  free(want);
}

static void test_chargeback_corpus(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "envelope ", 9) == 0)
      check_envelope(line, f);
    else if (strncmp(line, "rewrite ", 8) == 0)
      check_rewrite(line, f);
    else if (strncmp(line, "filter ", 7) == 0)
      check_filter(line, f);
    else {
      fprintf(stderr, "bad chargeback line: %s\n", line);
      exit(2);
    }
    if (fgetc(f) != '\n') {
      fprintf(stderr, "chargeback case not followed by a newline: %s\n", line);
      exit(2);
    }
  }
  fclose(f);
  CHECK(envelopes_seen >= 3 && envelopes_cut >= 1 && rewrites_seen >= 3 && filters_seen >= 2,
        "only %u envelopes (%u cut), %u rewrites, %u filter streams", envelopes_seen, envelopes_cut,
        rewrites_seen, filters_seen);
}

static void test_chargeback_misuse(void) {
  const char *env =
      "{\"appSubscriptionKey\":\"k\",\"request\":\"{}\",\"response\":\"data: [DONE]\\n\\n\"}";
  const uint8_t *e = (const uint8_t *)env;
  const uint8_t *secret = (const uint8_t *)SECRET;
  size_t slen = strlen(SECRET), elen = strlen(env);
  uint64_t dummy = 0;
  usagetap_meter *m = (usagetap_meter *)&dummy; /* must stay untouched on failure */

  /* Envelopes. */
  CHECK(usagetap_meter_envelope(NULL, 0, secret, slen, e, elen, NULL) ==
            USAGETAP_RESULT_NULL_PARAMETER,
        "envelope NULL out");
  CHECK(usagetap_meter_envelope(NULL, 0, secret, slen, (const uint8_t *)"not json", 8, &m) ==
            USAGETAP_RESULT_INVALID_JSON,
        "envelope not JSON");
  CHECK(usagetap_thread_last_error().len > 0, "envelope message");
  CHECK(usagetap_meter_envelope(NULL, 0, secret, slen, (const uint8_t *)"[1]", 3, &m) ==
            USAGETAP_RESULT_INVALID_JSON,
        "envelope array");
  CHECK(usagetap_meter_envelope(NULL, 0, secret, slen, NULL, 0, &m) == USAGETAP_RESULT_INVALID_JSON,
        "envelope empty");
  CHECK(usagetap_meter_envelope(NULL, 0, secret, slen, NULL, 5, &m) == USAGETAP_RESULT_NULL_PARAMETER,
        "envelope NULL with a length");
  CHECK(usagetap_meter_envelope(NULL, 0, NULL, 0, e, elen, &m) == USAGETAP_RESULT_INVALID_PARAMETER,
        "empty secret");
  CHECK(str_contains(usagetap_thread_last_error(), "secret"), "secret message");
  CHECK(usagetap_meter_envelope("{\"modle\":1}", 11, secret, slen, e, elen, &m) ==
            USAGETAP_RESULT_INVALID_OPTIONS,
        "envelope options");
  CHECK(m == (usagetap_meter *)&dummy, "meter_out written on failure");
  usagetap_envelope_info info;
  CHECK(usagetap_meter_envelope_info(NULL, &info) == USAGETAP_RESULT_NULL_PARAMETER, "info NULL");
  m = new_meter(NULL);
  CHECK(usagetap_meter_envelope_info(m, &info) == USAGETAP_RESULT_NOT_AN_ENVELOPE, "not an envelope");
  CHECK(usagetap_meter_envelope_info(m, NULL) == USAGETAP_RESULT_NULL_PARAMETER, "info NULL out");
  usagetap_meter_free(m);
  /* An envelope without a usable response still gives a record; no eventTime is {NULL, 0}. */
  CHECK(usagetap_meter_envelope(NULL, 0, secret, slen, e, elen, &m) == OK, "small envelope");
  CHECK(usagetap_meter_envelope_info(m, &info) == OK && info.consumer.len == 32 &&
            info.event_time.data == NULL && info.event_time.len == 0,
        "small envelope info");
  usagetap_meter_free(m);

  /* The rewrite. */
  usagetap_bytes out = {NULL, 0};
  uint32_t changed = 9, asked = 9;
  const uint8_t *req = (const uint8_t *)"{\"stream\":true}";
  CHECK(usagetap_rewrite_include_usage(req, 15, NULL, &changed, &asked) ==
            USAGETAP_RESULT_NULL_PARAMETER,
        "rewrite NULL body_out");
  CHECK(usagetap_rewrite_include_usage(req, 15, &out, NULL, &asked) == USAGETAP_RESULT_NULL_PARAMETER,
        "rewrite NULL changed_out");
  CHECK(usagetap_rewrite_include_usage(req, 15, &out, &changed, NULL) ==
            USAGETAP_RESULT_NULL_PARAMETER,
        "rewrite NULL client_asked_out");
  CHECK(usagetap_rewrite_include_usage(NULL, 15, &out, &changed, &asked) ==
            USAGETAP_RESULT_NULL_PARAMETER,
        "rewrite NULL body with a length");
  CHECK(out.data == NULL && changed == 9 && asked == 9, "rewrite out-params written on failure");
  CHECK(usagetap_rewrite_include_usage(NULL, 0, &out, &changed, &asked) == OK && out.data == NULL &&
            out.len == 0 && changed == 0 && asked == 0,
        "rewrite (NULL, 0)");
  CHECK(usagetap_rewrite_include_usage((const uint8_t *)"\xff{", 2, &out, &changed, &asked) == OK &&
            out.len == 2 && changed == 0,
        "rewrite non-JSON");
  usagetap_bytes_free(&out);
  usagetap_bytes_free(&out);
  usagetap_bytes_free(NULL);

  /* The filter. */
  usagetap_usage_filter *filter = NULL;
  usagetap_slice s = {NULL, 0};
  uint64_t removed = 77;
  usagetap_usage_filter_free(NULL);
  CHECK(usagetap_usage_filter_new(0, NULL) == USAGETAP_RESULT_NULL_PARAMETER, "filter_new NULL");
  CHECK(usagetap_usage_filter_feed(NULL, req, 1, &s) == USAGETAP_RESULT_NULL_PARAMETER, "feed NULL");
  CHECK(usagetap_usage_filter_finish(NULL, &s) == USAGETAP_RESULT_NULL_PARAMETER, "finish NULL");
  CHECK(usagetap_usage_filter_removed(NULL, &removed) == USAGETAP_RESULT_NULL_PARAMETER && removed == 77,
        "removed NULL");
  CHECK(usagetap_usage_filter_new(16, &filter) == OK, "filter_new");
  CHECK(usagetap_usage_filter_feed(filter, req, 1, NULL) == USAGETAP_RESULT_NULL_PARAMETER,
        "feed NULL out");
  CHECK(usagetap_usage_filter_feed(filter, NULL, 3, &s) == USAGETAP_RESULT_NULL_PARAMETER,
        "feed NULL with a length");
  CHECK(usagetap_usage_filter_feed(filter, NULL, 0, &s) == OK && s.len == 0, "feed (NULL, 0)");
  CHECK(usagetap_usage_filter_removed(filter, NULL) == USAGETAP_RESULT_NULL_PARAMETER,
        "removed NULL out");
  /* An event that grows past max_event_bytes before its end arrives passes through unread. */
  const char *big =
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,"
      "\"total_tokens\":2}}\n\n";
  uint8_t *got = NULL;
  size_t got_len = 0, got_cap = 0, big_len = strlen(big);
  int fed = 1;
  for (size_t at = 0; at < big_len && fed; at += 4) {
    size_t n = big_len - at < 4 ? big_len - at : 4;
    fed = usagetap_usage_filter_feed(filter, (const uint8_t *)big + at, n, &s) == OK;
    if (fed) append(&got, &got_len, &got_cap, s);
  }
  CHECK(fed && got_len == big_len && memcmp(got, big, big_len) == 0,
        "over-long event passed through (%zu bytes)", got_len);
  free(got);
  CHECK(usagetap_usage_filter_finish(filter, &s) == OK && s.len == 0, "finish");
  CHECK(usagetap_usage_filter_finish(filter, &s) == USAGETAP_RESULT_FINISHED, "finish twice");
  CHECK(usagetap_usage_filter_removed(filter, &removed) == OK && removed == 0, "removed");
  usagetap_usage_filter_free(filter);
}

static void test_count_tokens(void) {
  uint64_t n = 99;
  CHECK(usagetap_count_tokens("hello world", 11, "gpt-4o", 6, &n) == OK && n == 2, "count %" PRIu64,
        n);
  CHECK(usagetap_count_tokens("hello world", 11, "gpt-4", 5, &n) == OK && n == 2, "count cl100k");
  CHECK(usagetap_count_tokens(NULL, 0, NULL, 0, &n) == OK && n == 0, "count empty");
  n = 77;
  CHECK(usagetap_count_tokens("\xff", 1, NULL, 0, &n) == USAGETAP_RESULT_INVALID_UTF8, "count utf8");
  CHECK(n == 77, "count_out written on failure");
  CHECK(usagetap_count_tokens("a", 1, "\xfe", 1, &n) == USAGETAP_RESULT_INVALID_UTF8, "model utf8");
  CHECK(usagetap_thread_last_error().len > 0, "count message");
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--leak-one-meter") == 0) {
    /* For ffi/test.sh: proves valgrind's leak check would catch a meter never freed. */
    usagetap_record rec;
    usagetap_meter *m = new_meter(NULL);
    usagetap_meter_feed(m, (const uint8_t *)STREAM, strlen(STREAM));
    usagetap_meter_finish(m, &rec);
    printf("leaked one meter (%" PRIu64 " tokens)\n", rec.total_tokens);
    return 0;
  }
  if (argc != 3) {
    fprintf(stderr, "usage: %s CASES_FILE CHARGEBACK_FILE\n", argv[0]);
    return 2;
  }
  test_version();
  test_static_strings();
  test_null_and_misuse();
  test_count_tokens();
  test_chargeback_misuse();
  test_corpus(argv[1]);
  test_chargeback_corpus(argv[2]);
  printf("corpus: %u cases; %u streams and %u JSON bodies matched the reported usage; "
         "%u streams without usage computed\n",
         cases_seen, matched_streams, matched_bodies, computed_streams);
  printf("chargeback: %u APIM envelopes (%u cut), %u rewrites, %u filtered streams\n",
         envelopes_seen, envelopes_cut, rewrites_seen, filters_seen);
  printf("%u passed, %u failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
