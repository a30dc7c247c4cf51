/*
 * cli.h - the genai command: subcommand entry points and shared helpers.
 *
 * Each subcommand lives in cmd_<name>.c and has the signature
 * int cmd_<name>(int argc, char **argv), where argv[0] is the subcommand name.
 * It returns the process exit status: CLI_OK, CLI_FAIL (the operation failed;
 * an error was printed) or CLI_USAGE (bad flags; usage was printed).
 */
#ifndef GENAI_CLI_H
#define GENAI_CLI_H

#include "genai.h"

#include <jansson.h>
#include <stdio.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Subcommands. Add one line here and one row in main.c's table per command. */
int cmd_system(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_settings(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_logs(int argc, char **argv);
struct store_model;
/* Prints a diffusion model's detection and effective settings (cmd_show.c). */
void cli_print_dm(FILE *out, const struct store_model *m);
/* Prints one settings row (size, steps, cfg, guidance, sampler, ...). */
struct dm_settings;
void cli_print_dm_settings(FILE *out, const struct dm_settings *s);

/* Prints "genai CMD: <message>[: detail]" to stderr for a failed call. */
void cli_report(const char *cmd, int code, const genai_error *err);
/* Prints a usage complaint ("genai CMD: MSG\nTry 'genai CMD --help'.") and
 * returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes value as indented JSON plus a newline to out and releases it.
 * Returns CLI_OK, or CLI_FAIL when the value is NULL or cannot be written. */
int cli_print_json(FILE *out, json_t *value);
/* True when fd refers to a terminal and NO_COLOR/TERM=dumb do not say otherwise. */
int cli_is_tty(int fd);
/* Formats bytes as "7.06 GiB" / "512.0 MiB" / "12 KiB" into buf. */
const char *cli_fmt_bytes(char *buf, size_t bufsz, unsigned long long bytes);

#endif
