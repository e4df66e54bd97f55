/*  pyfmt: see pyfmt.h.  The shortest round-trip digits come from trying
 *  %.Ne with growing precision; the layout (fixed between 1e-4 and 1e16,
 *  exponent with at least two digits outside) is Python's float_repr. */
#include "pyfmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Splits the shortest %e text of value into digits and a decimal exponent. */
static int shortest_digits(double value, char *digits, size_t len, int *exponent)
{
    char tmp[48];
    for (int precision = 0; precision < 17; precision++) {
        snprintf(tmp, sizeof tmp, "%.*e", precision, value);
        if (strtod(tmp, NULL) == value)
            break;
    }
    char *e = strchr(tmp, 'e');
    if (!e)
        return -1;
    *exponent = atoi(e + 1);
    size_t n = 0;
    for (char *p = tmp; p < e && n + 1 < len; p++)
        if (*p >= '0' && *p <= '9')
            digits[n++] = *p;
    digits[n] = '\0';
    while (n > 1 && digits[n - 1] == '0')
        digits[--n] = '\0';
    return 0;
}

char *rs_py_float(double value, char *buf, size_t len)
{
    if (isnan(value)) {
        snprintf(buf, len, "nan");
        return buf;
    }
    if (isinf(value)) {
        snprintf(buf, len, value < 0 ? "-inf" : "inf");
        return buf;
    }
    const char *sign = signbit(value) ? "-" : "";
    char digits[32];
    int exp10;
    if (shortest_digits(fabs(value), digits, sizeof digits, &exp10) < 0) {
        snprintf(buf, len, "%g", value);
        return buf;
    }
    int nd = (int)strlen(digits);
    if (exp10 >= -4 && exp10 < 16) {
        char fixed[48];
        size_t o = 0;
        if (exp10 >= 0) {
            for (int i = 0; i <= exp10; i++)
                fixed[o++] = i < nd ? digits[i] : '0';
            fixed[o++] = '.';
            if (exp10 + 1 < nd)
                for (int i = exp10 + 1; i < nd; i++)
                    fixed[o++] = digits[i];
            else
                fixed[o++] = '0';
        } else {
            fixed[o++] = '0';
            fixed[o++] = '.';
            for (int i = 0; i < -exp10 - 1; i++)
                fixed[o++] = '0';
            for (int i = 0; i < nd; i++)
                fixed[o++] = digits[i];
        }
        fixed[o] = '\0';
        snprintf(buf, len, "%s%s", sign, fixed);
    } else if (nd > 1) {
        snprintf(buf, len, "%s%c.%se%c%02d", sign, digits[0], digits + 1,
                 exp10 < 0 ? '-' : '+', abs(exp10));
    } else {
        snprintf(buf, len, "%s%ce%c%02d", sign, digits[0], exp10 < 0 ? '-' : '+', abs(exp10));
    }
    return buf;
}

char *rs_py_str(json_t *value, char *buf, size_t len)
{
    if (!value || json_is_null(value))
        snprintf(buf, len, "None");
    else if (json_is_true(value))
        snprintf(buf, len, "True");
    else if (json_is_false(value))
        snprintf(buf, len, "False");
    else if (json_is_string(value))
        snprintf(buf, len, "%s", json_string_value(value));
    else if (json_is_integer(value))
        snprintf(buf, len, "%lld", (long long)json_integer_value(value));
    else if (json_is_real(value))
        rs_py_float(json_real_value(value), buf, len);
    else {
        char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(buf, len, "%s", text ? text : "");
        free(text);
    }
    return buf;
}

int rs_py_truthy(json_t *value)
{
    if (!value || json_is_null(value) || json_is_false(value))
        return 0;
    if (json_is_string(value))
        return json_string_length(value) > 0;
    if (json_is_integer(value))
        return json_integer_value(value) != 0;
    if (json_is_real(value))
        return json_real_value(value) != 0.0;
    if (json_is_object(value))
        return json_object_size(value) > 0;
    if (json_is_array(value))
        return json_array_size(value) > 0;
    return 1;
}
