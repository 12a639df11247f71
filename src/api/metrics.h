/* metrics.h - the node's state in the Prometheus text exposition format
 * 0.0.4 (GET /metrics, docs/api.md).
 *
 * Owns: the metric names, types, labels and help texts below, which are a
 * contract with dashboards and alert rules like the JSON field names are.
 * A pure renderer: it reads the status documents the control socket serves
 * and nothing else (no clock, no system call, no global), so what /metrics
 * says is what `tandemctl status --json` says, and a unit test can feed it
 * any document.
 *
 * Conventions (https://prometheus.io/docs/instrumenting/exposition_formats/
 * and .../practices/naming/): prefix tandem_, base units in names
 * (_seconds), counters end in _total, a "state set" is one gauge series per
 * possible state with 1 on the current one, an _info gauge is 1 and carries
 * its facts in labels. Every family has # HELP and # TYPE and its samples
 * together; a field absent from the documents gives no sample (a family
 * without samples is left out), never a made-up value.
 *
 * The families (labels in braces):
 *   tandem_build_info{version,node}                      gauge 1
 *   tandem_uptime_seconds                                gauge
 *   tandem_maintenance, tandem_tilt                      gauge 0/1
 *   tandem_protocol_level                                gauge
 *   tandem_alarms                                        gauge (active alarms)
 *   tandem_group_state{group,state}                      gauge state set
 *                           (init, secondary, primary, ineligible)
 *   tandem_group_primary{group,node}                     gauge 1 (primary as known here)
 *   tandem_group_priority{group}, tandem_group_eligible{group},
 *   tandem_group_manual{group}, tandem_group_epoch{group} gauge
 *   tandem_group_state_duration_seconds{group}           gauge (time in the state)
 *   tandem_peer_up{peer}                                 gauge 1 alive, 0 lost
 *   tandem_peer_state_duration_seconds{peer}             gauge
 *   tandem_peer_maintenance{peer}                        gauge 0/1
 *   tandem_peer_version_info{peer,version}               gauge 1
 *   tandem_link_up{peer,link,address}                    gauge 0/1
 *   tandem_link_received_total{peer,link}                counter (messages heard)
 *   tandem_link_heartbeats_missed_total{peer,link}       counter (heartbeat loss:
 *       intervals with no heartbeat, from the gaps between those that came)
 *   tandem_link_last_received_age_seconds{peer,link}     gauge (silence so far)
 *   tandem_control_messages_received_total               counter (accepted)
 *   tandem_control_messages_sent_total                   counter
 *   tandem_control_datagrams_received_total              counter (read from sockets)
 *   tandem_control_dropped_total{reason}                 counter (malformed, replayed,
 *       unauthenticated, wrong_cluster, bad_version, unknown_type)
 *   tandem_control_send_errors_total                     counter
 *   tandem_netlink_dropped_total{reason}                 counter (malformed, stale,
 *       untracked_link)
 *   tandem_netlink_overruns_total, tandem_netlink_resyncs_total  counter
 *   tandem_config_generation, tandem_config_in_sync      gauge (cluster view)
 *   tandem_config_committed_generation{node}, tandem_config_applied_generation{node},
 *   tandem_config_pending_generation{node}               gauge (every node with
 *       the `config status` detail, else this node)
 *   tandem_config_node_in_sync{node}                     gauge (detail only)
 *   tandem_config_sync_received_total, _rejected_total, _sent_total  counter (detail only)
 *   tandem_session_sync_enabled                          gauge 0/1
 *   tandem_sessions                                      gauge (sessions in the table)
 *   tandem_session_sync_in_sync                          gauge 0/1
 *   tandem_session_sync_role{role}                       gauge state set (idle,
 *       primary, secondary)
 *   tandem_session_sync_bulk_active                      gauge 0/1
 *   tandem_session_sync_bulk_records, _bulk_expected_records  gauge
 *   tandem_session_sync_peer_state{peer,state}           gauge state set (idle,
 *       wait_bulk, bulk, sync), primary only, as are the peer families below
 *   tandem_session_sync_peer_in_sync{peer}, _peer_stalled{peer}  gauge 0/1
 *   tandem_session_sync_peer_sessions{peer}              gauge
 *   tandem_session_sync_backlog_records{peer}            gauge
 *   tandem_session_sync_lag_seconds{peer}                gauge
 *   tandem_session_sync_messages_sent_total, _messages_resent_total,
 *   _messages_received_total, _applied_total, _local_events_total,
 *   _bulks_total, _resyncs_total, _digest_mismatches_total  counter
 *   tandem_conntrack_overruns_total, tandem_conntrack_apply_errors_total,
 *   tandem_conntrack_injected_total                      counter
 *   tandem_upgrade_state{state}                          gauge state set (idle,
 *       running, aborting, completed, aborted, rolled_back, failed)
 *   tandem_upgrade_phase_info{phase}                     gauge 1
 *   tandem_upgrade_frozen, tandem_upgrade_finalized      gauge 0/1
 *   tandem_upgrade_id                                    gauge
 *   tandem_upgrade_info{from,to}                         gauge 1
 *   tandem_upgrade_elapsed_seconds                       gauge
 *   tandem_upgrade_node_state{node,state}                gauge state set (pending,
 *       fetching, installing, restarting, resyncing, upgraded, reverting,
 *       reverted, failed)
 *   tandem_upgrade_step_status{index,kind,node,group,status}  gauge state set
 *       (pending, running, done, failed, skipped)
 *   tandem_upgrade_step_duration_seconds{index,kind,node,group}  gauge (ended steps)
 *   tandem_upgrade_step_start_timestamp_seconds{index,kind,node,group}  gauge
 *       (wall clock; started steps)
 *   tandem_upgrade_error_info{code,step}                 gauge 1
 * A step's node label is its node, else its nodes joined by ",", else "";
 * its group label is its group or "". */
#ifndef TND_METRICS_H
#define TND_METRICS_H

#include <jansson.h>
#include <stddef.h>

/* Prometheus text exposition format 0.0.4 of the node's state. status is
 * the document of status_json() (what GET /api/cluster serves, minus
 * "ok"), upgrade the document of upg_status_json() (may be NULL: the
 * status's own "upgrade" summary is used). Returns a malloc'd
 * NUL-terminated text (caller frees), its length in *len (len may be
 * NULL), or NULL when out of memory. */
char *metrics_render(const json_t *status, const json_t *upgrade, size_t *len);

#endif
