/* waypoint_maps.c: no program, only the maps the waypoint reads. Loading it with the node's
 * pin dir opens the pinned l7_orig_dst_v1, so the waypoint uses BCC's ctypes of its layout
 * (defined once, in lib/redirect.h) to find each redirected connection's original
 * destination. */
#include "common.h"
#include "redirect.h"
