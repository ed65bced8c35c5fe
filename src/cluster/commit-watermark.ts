/**
 * A primary's commit watermark (docs/REPLICATION.md R7): the highest commit id W such that every
 * commit with an id up to W has completed. Commits complete out of order (different keys go to
 * different copies over different streams), so the watermark moves only over the completed
 * prefix of the commits opened, never to the highest completed id: a backup drops from its
 * replay log whatever the watermark covers, and one open commit below it would be dropped unsafely.
 */
export class CommitWatermark {
  /** Every commit with an id up to this one has completed. */
  value = 0;
  private last_id = 0;
  /** Ids opened and not yet passed by the watermark, in id order, from `head`. */
  private readonly ids: number[] = [];
  private readonly completed = new Set<number>();
  private head = 0;

  /** Opens the next commit and returns its id (1, 2, 3, ...). */
  open(): number {
    const id = ++this.last_id;
    this.ids.push(id);
    return id;
  }

  complete(id: number): void {
    if (!(id > this.value && id <= this.last_id)) throw new Error(`commit watermark: commit ${id} completed, but ids open are ${this.value + 1}..${this.last_id}`);
    if (this.completed.has(id)) throw new Error(`commit watermark: commit ${id} completed twice`);
    this.completed.add(id);
    const ids = this.ids;
    let head = this.head;
    while (head < ids.length && this.completed.has(ids[head]!)) {
      this.completed.delete(ids[head]!);
      this.value = ids[head]!;
      head++;
    }
    // Compact once the passed prefix is most of the array, so each id costs O(1) overall.
    if (head > 1024 && head * 2 > ids.length) {
      ids.splice(0, head);
      head = 0;
    }
    this.head = head;
  }

  /** Commits opened and not yet passed by the watermark. */
  get open_count(): number {
    return this.ids.length - this.head;
  }
}
