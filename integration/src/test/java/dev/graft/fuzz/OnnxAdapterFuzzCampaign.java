package dev.graft.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * The long run of {@link OnnxAdapterFuzzTest} for the {@code -Pfuzz} campaign, under JUnit: the
 * same target and oracle, fuzzed for minutes instead of seconds. Its corpus, {@code
 * OnnxAdapterFuzzCampaignInputs/load/}, holds the same seeds (written by {@link FuzzSeeds}).
 */
public final class OnnxAdapterFuzzCampaign {
  @FuzzTest(maxDuration = "4m")
  void load(byte[] input) {
    OnnxAdapterFuzzTest.check(input);
  }
}
