/* pin.h: where this node's maps live, and the macro every map declaration uses.
 *
 *   TULLE_PIN_DIR              set by the loader (-DTULLE_PIN_DIR="/sys/fs/bpf/tulle/<lab>/<node>")
 *   PINNED_MAP(type, key, value, name, max, flags)
 *                              a map pinned at TULLE_PIN_DIR/name: created on first load, adopted
 *                              by every later load, so an agent restart keeps all state.
 *
 * Map names carry a layout version (_v1); change it whenever a struct below changes, so a
 * new agent never adopts a pinned map of the old shape.
 */
#ifndef TULLE_PIN_H
#define TULLE_PIN_H

#ifndef TULLE_PIN_DIR
#error "TULLE_PIN_DIR must be defined by the loader"
#endif

#define PINNED_MAP(type, key, value, name, max, flags) \
	BPF_TABLE_PINNED(type, key, value, name, max, TULLE_PIN_DIR "/" #name, flags)

#define MAP_NO_PREALLOC 1 /* BPF_F_NO_PREALLOC */

#endif /* TULLE_PIN_H */
