/*  hexdigit: the value of one hexadecimal digit, either case, for the
 *  readers that decode them (httpparse's %XX escapes and chunk sizes,
 *  jsonscan's \uXXXX), so both read digits by one rule. */
#ifndef KEEL_HEXDIGIT_H
#define KEEL_HEXDIGIT_H

/* 0..15, or -1 when c is not a hexadecimal digit. */
static inline int hexdigit_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
#endif
