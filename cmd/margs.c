/* margs.c: option parsing for the moonport command (see margs.h). */
#include <stdio.h>
#include <string.h>

#include "margs.h"

static const char backend_opt[] = "--backend";
static const char workers_opt[] = "--workers";

/* Whether s is a number (all digits). */
static int digits(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

/* s as a count of workers (all digits, 1..MP_WORKERS_MAX), else -1. */
static int count(const char *s) {
  int n = 0;
  if (!*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    n = n * 10 + (*s - '0');
    if (n > MP_WORKERS_MAX) return -1;
  }
  return n >= 1 ? n : -1;
}

/* Whether s is the long option opt, alone or with "=". */
static int is_opt(const char *s, const char *opt, size_t n) {
  return strncmp(s, opt, n) == 0 && (s[n] == '\0' || s[n] == '=');
}

int mp_args_words(char **argv, int i) {
  const char *s = argv[i];
  if (is_opt(s, workers_opt, sizeof workers_opt - 1))
    return s[sizeof workers_opt - 1] == '\0' && argv[i + 1] &&
           digits(argv[i + 1]) ? 2 : 1;
  return strchr(s, '=') ? 1 : 2; /* --backend */
}

/* NAME from "--backend NAME" or "--backend=NAME"; NULL if missing. */
static const char *backend_name(char **argv, int *i) {
  const char *a = argv[*i] + sizeof backend_opt - 1;
  if (*a == '=') return a[1] ? a + 1 : NULL;
  const char *next = argv[*i + 1];
  if (!next || next[0] == '-' || !next[0]) return NULL;
  ++*i;
  return next;
}

int mp_args_parse(int argc, char **argv, struct mp_args *a) {
  int i;
  a->flags = 0;
  a->backend = NULL;
  a->workers = 0;
  for (i = 1; i < argc && argv[i]; i++) {
    const char *s = argv[i];
    a->first = i;
    if (s[0] != '-') return a->flags; /* the script */
    switch (s[1]) {
    case '-':
      if (s[2] == '\0') { /* "--": the script is next */
        a->first = i + 1;
        return a->flags;
      }
      if (strncmp(s, backend_opt, sizeof backend_opt - 1) == 0 &&
          (s[sizeof backend_opt - 1] == '\0' ||
           s[sizeof backend_opt - 1] == '=')) {
        if (!(a->backend = backend_name(argv, &i))) goto bad;
        break;
      }
      if (is_opt(s, workers_opt, sizeof workers_opt - 1)) {
        const char *v = s + sizeof workers_opt - 1;
        if (*v == '=') {
          if ((a->workers = count(v + 1)) < 0) goto bad;
        } else if (mp_args_words(argv, i) == 2) {
          if ((a->workers = count(argv[++i])) < 0) {
            a->first = i - 1;
            goto bad;
          }
        } else {
          a->workers = MP_WORKERS_CPUS;
        }
        break;
      }
      goto bad;
    case '\0': /* "-": the script is stdin */
      return a->flags;
    case 'E':
      if (s[2]) goto bad;
      a->flags |= MP_ARGS_NOENV;
      break;
    case 'W':
      if (s[2]) goto bad;
      break;
    case 'i':
      a->flags |= MP_ARGS_I; /* and -v */
      /* fall through */
    case 'v':
      if (s[2]) goto bad;
      a->flags |= MP_ARGS_V;
      break;
    case 'e':
      a->flags |= MP_ARGS_E;
      /* fall through */
    case 'l':
      if (s[2] == '\0') { /* the argument is the next word */
        i++;
        if (i >= argc || !argv[i] || argv[i][0] == '-') goto bad;
      }
      break;
    default:
      goto bad;
    }
  }
  a->first = i < argc ? i : argc; /* argc 0: no program name either */
  return a->flags;
bad: /* a->first is the option at fault */
  a->flags = MP_ARGS_ERROR;
  return a->flags;
}

void mp_args_error(const char *badopt, char *buf, unsigned size) {
  size_t n = sizeof backend_opt - 1; /* --backend or --backend=, not more */
  if (badopt[1] == 'e' || badopt[1] == 'l' ||
      (strncmp(badopt, backend_opt, n) == 0 &&
       (badopt[n] == '\0' || badopt[n] == '=')))
    snprintf(buf, size, "'%s' needs argument", badopt);
  else if (is_opt(badopt, workers_opt, sizeof workers_opt - 1))
    snprintf(buf, size, "'%s': a count from 1 to %d expected", badopt,
             MP_WORKERS_MAX);
  else
    snprintf(buf, size, "unrecognized option '%s'", badopt);
}
