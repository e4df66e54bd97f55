/*  web_assets: the dashboard's page (the files of web/), compiled into the binary by
 *  scripts/embed-assets.py at build time, so keeld serves it with no file
 *  on disk and nothing fetched from the internet. */
#ifndef OBS_WEB_ASSETS_H
#define OBS_WEB_ASSETS_H
#include <stddef.h>

typedef struct {
    const char *path;           /* "/app.js" */
    const char *content_type;
    const unsigned char *data;  /* NUL-terminated; len excludes the NUL */
    size_t len;
} web_asset_t;

/* Ends with a row whose path is NULL. */
extern const web_asset_t web_assets[];
#endif
