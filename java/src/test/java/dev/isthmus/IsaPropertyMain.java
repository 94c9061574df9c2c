package dev.isthmus;

/** Run in a fresh JVM by {@link IsaPropertyTest}: prints the active ISA, or the load error. */
public final class IsaPropertyMain {
    private IsaPropertyMain() {}

    public static void main(String[] args) {
        try {
            System.out.println("ISA=" + Isthmus.isa());
        } catch (Throwable t) {
            Throwable c = t;
            while (c.getCause() != null) c = c.getCause();
            System.out.println("ERROR=" + c.getMessage());
        }
    }
}
