/*
 * C test of the usagetap C ABI: real corpus exchanges fed in 1..7-byte pieces and checked
 * against the service's reported usage, plus every function's misuse cases.
 *
 * usage: test CASES_FILE   (CASES_FILE from ffi/tests/corpus_cases.py)
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
  for (uint32_t code = USAGETAP_RESULT_OK; code <= USAGETAP_RESULT_ERROR; code++) {
    usagetap_str s = usagetap_result_str(code);
    CHECK(s.len > 0 && !str_eq(s, "unknown result code"), "result_str(%u)", code);
  }
  CHECK(str_eq(usagetap_result_str(USAGETAP_RESULT_OK), "ok"), "ok");
  CHECK(str_eq(usagetap_result_str(0), "unknown result code"), "result 0");
  CHECK(str_eq(usagetap_result_str(6999), "unknown result code"), "result 6999");
  CHECK(str_eq(usagetap_flag_name(USAGETAP_FLAG_TRUNCATED), "truncated"), "flag name");
  CHECK(str_eq(usagetap_flag_name(USAGETAP_FLAG_NO_USAGE_REPORTED), "no_usage_reported"),
        "flag name");
  CHECK(str_eq(usagetap_flag_name(USAGETAP_FLAG_RESPONSE_NOT_FINISHED), "response_not_finished"),
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
      "\"max_choices\":8,\"max_tool_calls\":16}}";
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
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASES_FILE\n", argv[0]);
    return 2;
  }
  test_version();
  test_static_strings();
  test_null_and_misuse();
  test_count_tokens();
  test_corpus(argv[1]);
  printf("corpus: %u cases; %u streams and %u JSON bodies matched the reported usage; "
         "%u streams without usage computed\n",
         cases_seen, matched_streams, matched_bodies, computed_streams);
  printf("%u passed, %u failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
