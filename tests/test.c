/* test.c: the runner behind test.h. Each test runs in a forked child so that
 * a crash or failed assertion fails that test alone. */
#define _GNU_SOURCE
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 1024
static struct {
    const char *name;
    cst_test_fn fn;
} tests[MAX_TESTS];
static int n_tests;

void cst_test_register(const char *name, cst_test_fn fn) {
    if (n_tests < MAX_TESTS) {
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

void cst_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "  FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

void cst_test_skip(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "  SKIP: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(77);
}

const char *cst_test_shared(const char *rel) {
    static char bufs[8][4096];
    static int k;
    char *b = bufs[k++ & 7];
    const char *base = getenv("CST_SHARED");
    if (!base || !*base) base = "../shared";
    snprintf(b, 4096, "%s/%s", base, rel);
    return b;
}

const char *cst_test_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/cst-test-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n_tests; i++) {
        if (argc > 1) {
            bool want = false;
            for (int a = 1; a < argc; a++)
                if (strstr(tests[i].name, argv[a])) want = true;
            if (!want) continue;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            tests[i].fn();
            fflush(stdout);
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("ok    %s\n", tests[i].name);
            passed++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            printf("skip  %s\n", tests[i].name);
            skipped++;
        } else {
            if (WIFSIGNALED(status)) printf("FAIL  %s (signal %d)\n", tests[i].name, WTERMSIG(status));
            else printf("FAIL  %s\n", tests[i].name);
            failed++;
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
