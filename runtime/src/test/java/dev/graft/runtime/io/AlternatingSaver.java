package dev.graft.runtime.io;

import java.nio.file.Path;

/**
 * The child JVM of {@link AdapterFolderKillTest}: saves graft A's and graft B's adapters
 * alternately into one folder until it is killed, after printing {@code saving} once.
 */
public final class AlternatingSaver {
  private AlternatingSaver() {}

  public static void main(String[] args) {
    Path dir = Path.of(args[0]);
    PeftAdaptersTest.Store a = AdapterFolderKillTest.graftA();
    PeftAdaptersTest.Store b = AdapterFolderKillTest.graftB();
    System.out.println("saving");
    System.out.flush();
    for (long i = 0; ; i++) {
      PeftAdapters.save(i % 2 == 0 ? b : a, dir);
    }
  }
}
