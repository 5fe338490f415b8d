package dev.graft.examples.kotlin

import dev.graft.compiler.spec.ClassificationSpec
import dev.graft.examples.sentiment.SentimentData
import dev.graft.runtime.ModelOptions
import dev.graft.runtime.data.Batch
import dev.graft.runtime.data.Example
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import kotlin.math.ln

/**
 * The Kotlin example on the real all-MiniLM-L6-v2 host, kept short for `./mvnw verify`: the
 * kapt-generated class trains step by step, and [trainBoth] (what `main` runs) trains both grafts
 * on 320 sentences and scores them on 200 held-out ones.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class KotlinSentimentTest {
    private lateinit var train: List<Example>
    private lateinit var heldOut: List<Example>

    @BeforeAll
    fun load() {
        val data = SentimentData.load()
        train = data.train().take(320)
        heldOut = data.heldOut().take(200)
    }

    @Test
    fun `the builder's receiver lambdas set the options they name`() {
        val spec = builderGraft().spec()
        val lora = spec.adapters().single()
        assertEquals("lora", lora.kind())
        assertEquals(QUERY_VALUE, lora.target())
        assertEquals(mapOf("rank" to 4, "alpha" to 8.0), lora.options())
        assertEquals(0.05, (spec.task() as ClassificationSpec).labelSmoothing())
        assertEquals(0.01, spec.optimizer().weightDecay())
    }

    @Test
    fun `the kapt-generated graft's loss falls over its first steps`() {
        KotlinSentimentGraft.load(ModelOptions.defaults().withSeed(3)).use { graft ->
            // 6 layers × (query, value) × (A [384, 8] + B [8, 384]) + head (384 × 2 + 2).
            assertEquals(12L * 2 * 384 * 8 + 384 * 2 + 2, graft.model().parameterCount)
            val losses = train.take(24 * 16).chunked(16).map { examples ->
                val batch = Batch.of(examples, KotlinSentimentGraft.INPUT_NAMES)
                val inputs = batch.inputs()
                graft.trainStep(
                    inputs.getValue("input_ids"), inputs.getValue("attention_mask"),
                    inputs.getValue("token_type_ids"), batch.labels(), 2e-3f,
                )
            }
            val first = losses.take(4).average()
            val last = losses.takeLast(4).average()
            assertTrue(first > 0.6 && first < 0.8, "the first steps' loss is near ln 2 = 0.69: $losses")
            assertTrue(last < first - 0.1, "loss falls by more than 0.1 over 24 steps: $losses")
        }
    }

    @Test
    fun `both grafts beat chance after one short epoch`() {
        val runs = trainBoth(train, heldOut, epochs = 1)
        assertEquals(listOf("kapt", "builder"), runs.map { it.name })
        for (run in runs) {
            assertEquals(20L, run.steps, "320 sentences in batches of 16: $run")
            assertTrue(run.meanLoss < ln(2.0), "mean loss below chance's ln 2: $run")
            // 200 held-out sentences: chance is 0.5, one standard error about 0.035.
            assertTrue(run.accuracy > 0.7, "held-out accuracy well above chance: $run")
        }
    }
}
