/* lru.h: an intrusive doubly linked list kept in recency order (most recent
 * at the head), for the API's caches (image embeddings, extracted
 * documents). An entry embeds a cst_lru_node as its FIRST member, so a node
 * pointer is the entry pointer; the caller locks. */
#ifndef CST_LRU_H
#define CST_LRU_H

#include <stddef.h>

typedef struct cst_lru_node {
    struct cst_lru_node *prev, *next;
} cst_lru_node;

typedef struct cst_lru {
    cst_lru_node *head, *tail; /* most and least recently used; NULL when empty */
} cst_lru;

static inline void cst_lru_unlink(cst_lru *l, cst_lru_node *e) {
    if (e->prev) e->prev->next = e->next;
    else l->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else l->tail = e->prev;
    e->prev = e->next = NULL;
}

static inline void cst_lru_push_front(cst_lru *l, cst_lru_node *e) {
    e->next = l->head;
    e->prev = NULL;
    if (l->head) l->head->prev = e;
    l->head = e;
    if (!l->tail) l->tail = e;
}

/* e becomes the most recently used. */
static inline void cst_lru_touch(cst_lru *l, cst_lru_node *e) {
    cst_lru_unlink(l, e);
    cst_lru_push_front(l, e);
}

#endif
