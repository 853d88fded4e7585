/* args.c: libFuzzer target for the moonport command's option parsing
 * (cmd/margs.c, mp_args_parse and mp_args_error).
 *
 * The input builds an argv vector: words from a table of the interesting
 * ones ("", "-", "--", "-e", "-l", "-lmod", "g=mod", "--backend=", ...) or
 * raw bytes (any byte but NUL, so non-UTF-8 too), of any count from 0 to
 * over 100000 (a pattern repeated), now and then with a NULL before argc.
 * Every word and the vector itself are allocated to their exact size so
 * ASan sees a read past either.
 *
 * Checks, against an independent model of lua.c's collectargs plus
 * --backend NAME / --backend=NAME and --workers [N] / --workers=N: the
 * same flags, script index, backend (the same pointer into argv) and
 * worker count; the index is in range (the
 * offending option on an error, the script or argc otherwise); the
 * message for a bad option is lua.c's wording, NUL-terminated and within
 * any buffer size; argv is left untouched. */
#include <string.h>

#include "fuzz.h"
#include "margs.h"

static const char *const words[] = {
  "", "-", "--", "-e", "-l", "-i", "-v", "-E", "-W", "-x", "-ex=1",
  "-lmod", "-l", "g=mod", "mod", "x.lua", "-e-", "-iv", "-vi", "-Ex",
  "---", "--x", "--e", "--backend", "--backend=", "--backend=epoll",
  "--backendx", "--backend=-", "epoll", "-E-", "-\xff", "\xff\xfe",
  "-e\xc3", "\xc3\x28", "a b", "-W-", "--workers", "--workers=",
  "--workers=2", "--workers=0", "--workers=1025", "--workersx", "2", "0",
  "1024", "1025", "007",
};
enum { NWORDS = sizeof words / sizeof words[0], MAXPAT = 64 };

/* The model: lua.c's collectargs, written as a scan over the words with
 * n = the number of words before the first NULL (at most argc). */
struct model {
  int flags, first, workers;
  const char *backend;
};

static int is_opt(const char *s) { return s[0] == '-'; }

/* --workers' count: decimal digits only, 1..MP_WORKERS_MAX; else -1. */
static int model_count(const char *s) {
  long n = 0;
  if (!*s || strspn(s, "0123456789") != strlen(s)) return -1;
  for (; *s; s++)
    if ((n = n * 10 + (*s - '0')) > MP_WORKERS_MAX) return -1;
  return n >= 1 ? (int)n : -1;
}

static void model(int n, char **v, struct model *m) {
  m->flags = 0;
  m->workers = 0;
  m->backend = NULL;
  m->first = n < 1 ? n : 1;
  int i = 1;
  while (i < n) {
    const char *s = v[i];
    m->first = i;
    if (!is_opt(s) || strcmp(s, "-") == 0) return; /* the script */
    if (strcmp(s, "--") == 0) {
      m->first = i + 1;
      return;
    }
    if (strcmp(s, "-E") == 0) m->flags |= MP_ARGS_NOENV;
    else if (strcmp(s, "-v") == 0) m->flags |= MP_ARGS_V;
    else if (strcmp(s, "-i") == 0) m->flags |= MP_ARGS_V | MP_ARGS_I;
    else if (strcmp(s, "-W") == 0) {
    } else if (s[1] == 'e' || s[1] == 'l') {
      if (s[1] == 'e') m->flags |= MP_ARGS_E;
      if (!s[2] && (++i >= n || is_opt(v[i]))) goto bad;
    } else if (strcmp(s, "--backend") == 0) {
      if (++i >= n || is_opt(v[i]) || !v[i][0]) goto bad;
      m->backend = v[i];
    } else if (strncmp(s, "--backend=", 10) == 0) {
      if (!s[10]) goto bad;
      m->backend = s + 10;
    } else if (strcmp(s, "--workers") == 0) {
      /* a count when the next word is all digits, else every CPU */
      const char *nx = i + 1 < n ? v[i + 1] : "";
      if (*nx && strspn(nx, "0123456789") == strlen(nx)) {
        if ((m->workers = model_count(nx)) < 0) goto bad;
        i++;
      } else {
        m->workers = MP_WORKERS_CPUS;
      }
    } else if (strncmp(s, "--workers=", 10) == 0) {
      if ((m->workers = model_count(s + 10)) < 0) goto bad;
    } else {
      goto bad;
    }
    i++;
  }
  m->first = n < 1 ? n : i;
  return;
bad:
  m->flags = MP_ARGS_ERROR;
}

/* lua.c's message for a bad option (print_usage). */
static void model_msg(const char *s, char *buf, size_t size) {
  if (s[1] == 'e' || s[1] == 'l' || strcmp(s, "--backend") == 0 ||
      strncmp(s, "--backend=", 10) == 0)
    snprintf(buf, size, "'%s' needs argument", s);
  else if (strcmp(s, "--workers") == 0 || strncmp(s, "--workers=", 10) == 0)
    snprintf(buf, size, "'%s': a count from 1 to %d expected", s,
             MP_WORKERS_MAX);
  else
    snprintf(buf, size, "unrecognized option '%s'", s);
}

/* A word: from the table, or raw bytes (no NUL) in an exact allocation. */
static char *take_word(struct fz *z) {
  unsigned b = fz_byte(z);
  const char *w = words[b % NWORDS];
  char raw[32];
  if (b >= 0xC0) { /* raw bytes, often with a leading '-' */
    size_t k = 0, len = fz_byte(z) % 24;
    if (b & 1) raw[k++] = '-';
    if (b & 2) raw[k++] = (b & 4) ? '-' : (char)"eliEvW"[b % 6];
    while (len-- && z->n) {
      unsigned c = fz_byte(z);
      raw[k++] = (char)(c ? c : '=');
    }
    raw[k] = '\0';
    w = raw;
  }
  size_t len = strlen(w);
  char *s = malloc(len + 1);
  if (!s) abort();
  memcpy(s, w, len + 1);
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  struct fz z = {in, size};
  unsigned mode = fz_byte(&z);
  char *pat[MAXPAT];
  int npat = (int)(fz_byte(&z) % MAXPAT);
  for (int k = 0; k < npat; k++) pat[k] = take_word(&z);
  /* argc: the pattern once (the program name first), or repeated up to
   * 4096 words, or (rarely: they are slow) 131072; mode also chooses a
   * NULL before argc */
  int argc = npat;
  if (mode & 0x80 && npat > 1)
    argc = 1 + (int)(fz_bytes(&z, 2) * 2 % ((mode & 0x3F) == 0x3F ? 131072
                                                                  : 4096));
  char **argv = malloc(sizeof *argv * ((size_t)argc + 1));
  if (!argv) abort();
  static char prog[] = "moonport";
  for (int i = 0; i < argc; i++)
    argv[i] = i == 0 ? prog : pat[npat > 1 ? 1 + (i - 1) % (npat - 1) : 0];
  argv[argc] = NULL;
  int n = argc; /* the words before the first NULL */
  if (mode & 0x40 && argc > 1) {
    n = 1 + (int)(fz_bytes(&z, 2) % (unsigned)(argc - 1));
    argv[n] = NULL;
  }
  char **copy = malloc(sizeof *argv * ((size_t)argc + 1));
  if (!copy) abort();
  memcpy(copy, argv, sizeof *argv * ((size_t)argc + 1));

  struct mp_args a;
  struct model m;
  int r = mp_args_parse(argc, argv, &a);
  model(n, argv, &m);
  FUZZ_CHECK(memcmp(copy, argv, sizeof *argv * ((size_t)argc + 1)) == 0,
             "argv changed");
  FUZZ_CHECK(r == a.flags, "returned %d, flags %d", r, a.flags);
  FUZZ_CHECK(a.flags == m.flags && a.first == m.first,
             "argc %d (NULL at %d): flags %d first %d, expected %d %d",
             argc, n, a.flags, a.first, m.flags, m.first);
  FUZZ_CHECK(a.first >= 0 && a.first <= argc && a.first <= n,
             "first %d out of range (argc %d, NULL at %d)", a.first, argc,
             n);
  if (a.flags & MP_ARGS_ERROR) {
    const char *bad = argv[a.first];
    FUZZ_CHECK(a.first >= 1 && a.first < n && bad[0] == '-',
               "error at %d: not an option", a.first);
    char want[512], *got;
    size_t bufsize = 1 + fz_byte(&z) % 300;
    model_msg(bad, want, sizeof want);
    got = malloc(bufsize); /* exact, for ASan */
    if (!got) abort();
    mp_args_error(bad, got, (unsigned)bufsize);
    FUZZ_CHECK(strlen(got) < bufsize &&
                   strncmp(got, want, bufsize - 1) == 0,
               "message for '%s' (buffer %zu): '%s', expected '%s'", bad,
               bufsize, got, want);
    free(got);
  } else {
    FUZZ_CHECK(a.workers == m.workers, "workers %d, expected %d",
               a.workers, m.workers);
    FUZZ_CHECK(a.backend == m.backend, "backend %s, expected %s",
               a.backend ? a.backend : "(none)",
               m.backend ? m.backend : "(none)");
    /* the script: a non-option, "-", or anything after "--" */
    if (a.first < n)
      FUZZ_CHECK(!is_opt(argv[a.first]) || !argv[a.first][1] ||
                     strcmp(argv[a.first - 1], "--") == 0,
                 "script at %d is the option '%s'", a.first,
                 argv[a.first]);
  }
  free(copy);
  free(argv);
  for (int k = 0; k < npat; k++) free(pat[k]);
  return 0;
}
