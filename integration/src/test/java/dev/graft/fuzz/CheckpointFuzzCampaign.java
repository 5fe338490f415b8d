package dev.graft.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * The long run of {@link CheckpointFuzzTest} for the {@code -Pfuzz} campaign, under JUnit (Jazzer's
 * standalone driver crashes the JVM once ONNX Runtime is loaded in it): the same target and
 * oracle, fuzzed for minutes instead of seconds. Its corpus, {@code
 * CheckpointFuzzCampaignInputs/load/}, holds the same seeds (written by {@link FuzzSeeds}).
 */
public final class CheckpointFuzzCampaign {
  @FuzzTest(maxDuration = "4m")
  void load(byte[] input) {
    CheckpointFuzzTest.check(input);
  }
}
