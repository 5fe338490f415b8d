package dev.graft.examples.papers;

/**
 * A finished row: trainable parameters, the bytes of what was saved, held-out accuracy, training steps per
 * second, and anything the method adds (a second accuracy, a phase's figures), printed after the table.
 */
public record PaperResult(String name, long trainableParameters, long savedBytes, double accuracy,
    double stepsPerSecond, String extra) {
  public PaperResult {
    if (extra == null) {
      extra = "";
    }
  }
}
