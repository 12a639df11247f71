/* show.h - tandemctl's human-readable rendering of daemon answers.
 *
 * Owns: the text layouts of `tandemctl status` (modelled on a chassis
 * cluster's "show chassis cluster status": a header, a table of
 * redundancy groups, a table of peers, alarms, counters) and of event
 * lines ("TIME LEVEL EVENT key=value ...") and of `tandemctl config status`
 * (a verdict line, the coordinator, a table of nodes with the generation
 * each committed and applied). Input is the JSON the control
 * socket returns; missing fields print as "-" rather than crash. */
#ifndef TND_SHOW_H
#define TND_SHOW_H

#include <stdio.h>
#include <jansson.h>

void show_status(FILE *f, json_t *st);
void show_event(FILE *f, json_t *ev);
void show_sessions(FILE *f, json_t *ses);
/* `config status`: the answer to {"cmd":"config","op":"status"}. */
void show_config_status(FILE *f, json_t *st);
/* "3s", "4m05s", "2h03m", "5d04h". */
const char *show_duration(long long s, char *buf, size_t len);

#endif
