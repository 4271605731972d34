/* test_gguf.c: GGUF reader on the shared models, writer round trips, and
 * handcrafted malformed files (every one must fail cleanly with a message). */
#include "engine/gguf/gguf.h"
#include "test.h"

#include <dirent.h>
#include <stdlib.h>

TEST(opens_all_shared_models) {
    const char *dir = cst_test_shared("models");
    DIR *d = opendir(dir);
    if (!d) cst_test_skip("no %s", dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf")) continue;
        char path[4096], err[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        cst_gguf *g = NULL;
        cst_status st = cst_gguf_open(path, &g, err, sizeof err);
        ASSERT_MSG(st == CST_OK, "%s: %s", path, err);
        ASSERT(cst_gguf_version(g) >= 2);
        ASSERT(cst_gguf_n_kv(g) > 0);
        ASSERT(cst_gguf_find_key(g, "general.architecture") >= 0);
        for (int64_t i = 0; i < cst_gguf_n_tensors(g); i++) {
            const cst_gguf_tensor *t = cst_gguf_tensor_at(g, i);
            ASSERT(t && t->data);
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
            ASSERT(cst_gguf_find_tensor(g, name) == t);
        }
        cst_gguf_close(g);
        n++;
    }
    closedir(d);
    ASSERT(n >= 10);
}
