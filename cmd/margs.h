/* margs.h: the moonport command's option parsing, a pure function (no Lua,
 * no IO) so tests and fuzzers can drive it directly. */
#ifndef MARGS_H
#define MARGS_H

enum {
  MP_ARGS_ERROR = 1, /* bad option: argv[first] is the culprit */
  MP_ARGS_I = 2,     /* -i (implies -v, as in lua.c) */
  MP_ARGS_V = 4,     /* -v */
  MP_ARGS_E = 8,     /* -e (some statement to run) */
  MP_ARGS_NOENV = 16 /* -E */
};

struct mp_args {
  int flags;           /* MP_ARGS_* */
  int first;           /* the script's index, argc if none; the bad option
                          on MP_ARGS_ERROR */
  const char *backend; /* --backend NAME (or --backend=NAME), else NULL */
  int workers;         /* --workers [N]: N (1..MP_WORKERS_MAX), or
                          MP_WORKERS_CPUS without N; 0 without it */
};

enum { MP_WORKERS_CPUS = -1, MP_WORKERS_MAX = 1024 };

/* Parses argv (argv[argc] must be NULL) as lua.c's collectargs does, plus
 * --backend NAME. Options end at the first non-option, at "--" (the script
 * is the next argument) or at "-" (the script is stdin). -e and -l take
 * their argument attached (-eSTAT) or as the next one, which must not
 * start with '-'. --workers takes an optional count, as make -j does:
 * "--workers=N", or "--workers N" when the next word is a number
 * (1..MP_WORKERS_MAX, else an error).
 * Returns a->flags. */
int mp_args_parse(int argc, char **argv, struct mp_args *a);

/* How many words the long option at argv[i] takes (1 or 2): "--backend
 * NAME" and "--workers N" take the next word, "--workers" followed by a
 * word that is no number does not. */
int mp_args_words(char **argv, int i);

/* The message for a bad option: "'-e' needs argument" or "unrecognized
 * option '-x'" (lua.c's wording), written to buf. */
void mp_args_error(const char *badopt, char *buf, unsigned size);

#endif
