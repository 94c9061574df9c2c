package dev.isthmus.speculative;

import java.util.Arrays;

/**
 * The shape of what the draft model proposes in one step: {@code nodes()} draft tokens, node {@code j}
 * a child of node {@code parents()[j]} ({@code -1}: a child of the root, the last committed token).
 * Parents come before their children ({@code -1 <= parents[j] < j}). A chain of {@code k} tokens is
 * {@code parents = {-1, 0, 1, ..., k-2}}; wider trees let the target check several continuations in its
 * one forward pass (SpecInfer, Sequoia), the target reading them with the tree attention mask.
 * Immutable.
 *
 * <pre>{@code
 * DraftTree chain = DraftTree.chain(4);              // d1 -> d2 -> d3 -> d4
 * DraftTree tree = DraftTree.branching(2, 2, 1);     // 2 + 4 + 4 = 10 nodes, depth 3
 * DraftTree custom = DraftTree.of(-1, -1, 0, 0, 2);  // two root children, node 0 has two, node 2 one
 * int depth = tree.depth();                          // 3: the most tokens one step can accept
 * }</pre>
 */
public final class DraftTree {
    /** Most nodes a tree may have (ISTHMUS_TREE_MAX_NODES). */
    public static final int MAX_NODES = 256;

    private final int[] parents;
    private final int[] depths;
    private final int depth;
    private final boolean chain;
    private final int[][] children;

    private DraftTree(int[] parents) {
        this.parents = parents;
        int n = parents.length;
        depths = new int[n];
        int d = 0;
        boolean isChain = true;
        int[] childCount = new int[n + 1];
        for (int j = 0; j < n; j++) {
            depths[j] = parents[j] < 0 ? 1 : depths[parents[j]] + 1;
            d = Math.max(d, depths[j]);
            if (parents[j] != j - 1) isChain = false;
            childCount[parents[j] + 1]++;
        }
        depth = d;
        chain = isChain;
        children = new int[n + 1][];
        for (int i = 0; i <= n; i++) children[i] = new int[childCount[i]];
        int[] fill = new int[n + 1];
        for (int j = 0; j < n; j++) children[parents[j] + 1][fill[parents[j] + 1]++] = j;
    }

    /**
     * A chain of {@code k} draft tokens, each the child of the one before.
     *
     * @throws IllegalArgumentException unless {@code 1 <= k <= MAX_NODES}
     */
    public static DraftTree chain(int k) {
        if (k < 1 || k > MAX_NODES)
            throw new IllegalArgumentException("k (the draft length) must be in [1, " + MAX_NODES + "], got " + k);
        int[] p = new int[k];
        for (int j = 0; j < k; j++) p[j] = j - 1;
        return new DraftTree(p);
    }

    /**
     * The tree with these parents: {@code parents[j]} in {@code [-1, j - 1]}, {@code -1} for a child of the root.
     *
     * @throws IllegalArgumentException for no nodes, more than MAX_NODES, or a parent out of range
     */
    public static DraftTree of(int... parents) {
        if (parents == null) throw new IllegalArgumentException("parents is null");
        if (parents.length < 1 || parents.length > MAX_NODES)
            throw new IllegalArgumentException("parents has " + parents.length + " entries: a draft tree needs 1 to "
                    + MAX_NODES + " nodes");
        for (int j = 0; j < parents.length; j++)
            if (parents[j] < -1 || parents[j] >= j)
                throw new IllegalArgumentException("parents[" + j + "] = " + parents[j] + " is not in [-1, " + (j - 1)
                        + "]: a node's parent is the root (-1) or a node before it");
        return new DraftTree(parents.clone());
    }

    /**
     * The complete tree with {@code perLevel[0]} children of the root, {@code perLevel[1]} children of
     * each of those, and so on; nodes are numbered level by level (breadth first).
     *
     * @throws IllegalArgumentException for no levels, a count below 1, or more than MAX_NODES nodes
     */
    public static DraftTree branching(int... perLevel) {
        if (perLevel == null || perLevel.length == 0)
            throw new IllegalArgumentException("perLevel needs at least one level");
        long total = 0, width = 1;
        for (int l = 0; l < perLevel.length; l++) {
            if (perLevel[l] < 1)
                throw new IllegalArgumentException("perLevel[" + l + "] = " + perLevel[l] + " must be >= 1");
            width *= perLevel[l];
            total += width;
            if (total > MAX_NODES)
                throw new IllegalArgumentException("perLevel " + Arrays.toString(perLevel) + " makes more than "
                        + MAX_NODES + " nodes");
        }
        int[] p = new int[(int) total];
        int n = 0, levelStart = -1, levelCount = 1; // the root is the single "level 0" node, index -1
        for (int c : perLevel) {
            int start = n;
            for (int i = 0; i < levelCount; i++) {
                int parent = levelStart < 0 ? -1 : levelStart + i;
                for (int k = 0; k < c; k++) p[n++] = parent;
            }
            levelStart = start;
            levelCount = n - start;
        }
        return new DraftTree(p);
    }

    /** T: the number of draft tokens. */
    public int nodes() {
        return parents.length;
    }

    /** A copy of the parents: {@code parents[j]} is {@code -1} (the root) or a node before {@code j}. */
    public int[] parents() {
        return parents.clone();
    }

    /**
     * The parent of node {@code j} ({@code -1}: the root).
     *
     * @throws IndexOutOfBoundsException naming j unless {@code 0 <= j < nodes()}
     */
    public int parent(int j) {
        return parents[node(j)];
    }

    /**
     * The depth of node {@code j}: 1 for a child of the root.
     *
     * @throws IndexOutOfBoundsException naming j unless {@code 0 <= j < nodes()}
     */
    public int depth(int j) {
        return depths[node(j)];
    }

    private int node(int j) {
        if (j < 0 || j >= parents.length)
            throw new IndexOutOfBoundsException("j = " + j + " is not a node of " + this + " (0 to " + (parents.length - 1) + ")");
        return j;
    }

    /** The longest root-to-leaf path: the most draft tokens one step can accept. */
    public int depth() {
        return depth;
    }

    /** True when node {@code j}'s parent is {@code j - 1} for every {@code j}. */
    public boolean isChain() {
        return chain;
    }

    /** The children of node {@code j} ({@code -1}: of the root), in index order. */
    int[] children(int j) {
        return children[j + 1];
    }

    /** True when siblings exist anywhere (how they were drawn then matters to verification). */
    boolean hasSiblings() {
        for (int[] c : children) if (c.length > 1) return true;
        return false;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DraftTree t && Arrays.equals(parents, t.parents);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(parents);
    }

    @Override
    public String toString() {
        return chain ? "DraftTree.chain(" + parents.length + ")" : "DraftTree.of" + Arrays.toString(parents);
    }
}
