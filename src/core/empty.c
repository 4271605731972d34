/* empty.c: placeholder translation unit for a module that has no sources yet. */
typedef int cst_empty_unit;
