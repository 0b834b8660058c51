/**
 * The warm accounts to re-certify this tick: the `capacity` with the most room among those offered (a min-heap on
 * the room, so offering is O(log capacity) and the sweep stays linear).
 */
export class CoolQueue {
  readonly slots: Int32Array;
  private readonly rooms: Float64Array;
  length = 0;

  constructor(readonly capacity: number) {
    this.slots = new Int32Array(Math.max(1, capacity));
    this.rooms = new Float64Array(Math.max(1, capacity));
  }

  offer(slot: number, room: number): void {
    const cap = this.capacity;
    if (cap === 0) return;
    const rooms = this.rooms;
    const slots = this.slots;
    if (this.length < cap) {
      let i = this.length++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if ((rooms[parent] as number) <= room) break;
        rooms[i] = rooms[parent] as number;
        slots[i] = slots[parent] as number;
        i = parent;
      }
      rooms[i] = room;
      slots[i] = slot;
      return;
    }
    if (!(room > (rooms[0] as number))) return;
    let i = 0;
    const n = this.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && (rooms[child + 1] as number) < (rooms[child] as number)) child++;
      if ((rooms[child] as number) >= room) break;
      rooms[i] = rooms[child] as number;
      slots[i] = slots[child] as number;
      i = child;
    }
    rooms[i] = room;
    slots[i] = slot;
  }

  clear(): void {
    this.length = 0;
  }
}
