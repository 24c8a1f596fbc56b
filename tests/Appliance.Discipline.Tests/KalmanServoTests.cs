namespace Appliance.Discipline.Tests;

public class KalmanServoTests
{
    [Fact]
    public void LearnsAFrequencyFromNoiselessOffsets()
    {
        var servo = new KalmanServo();
        servo.Reset(Samples.At(0), 0, 1e-12);
        for (int i = 1; i <= 200; i++)
        {
            servo.Update(Samples.At(16 * i), 10e-6 * 16 * i, 1e-12); // 10 ppm
        }
        Assert.True(Math.Abs(servo.Frequency - 10e-6) < 1e-9, $"f {servo.Frequency}");
        Assert.True(Math.Abs(servo.Offset - (10e-6 * 16 * 200)) < 1e-7, $"θ {servo.Offset}");
        Assert.True(servo.FrequencyStdDev < 1e-8, $"σf {servo.FrequencyStdDev}");
    }

    [Fact]
    public void UncertaintyGrowsWhileNothingIsMeasured()
    {
        var servo = new KalmanServo();
        servo.Reset(Samples.At(0), 0, 1e-12, frequency: 0, frequencyVariance: 1e-16);
        double before = servo.OffsetStdDev;
        servo.Predict(Samples.At(3600));
        // An hour with σf = 0.01 ppm alone adds 36 µs.
        Assert.True(servo.OffsetStdDev > before + 30e-6, $"σθ {servo.OffsetStdDev}");
    }

    [Fact]
    public void AnOlderMeasurement_IsCarriedForwardByTheFrequency()
    {
        var servo = new KalmanServo();
        servo.Reset(Samples.At(0), 0, 1e-12, frequency: 1e-6, frequencyVariance: 1e-30);
        servo.Predict(Samples.At(100)); // θ = 100 µs now
        double innovation = servo.Update(Samples.At(50), 50e-6, 1e-12);
        Assert.Equal(0, innovation, 12);
        Assert.Equal(Samples.At(100), servo.Time);
    }

    [Fact]
    public void ARunOfOneSignedInnovations_WidensTheFrequencyUncertainty()
    {
        var servo = new KalmanServo();
        servo.Reset(Samples.At(0), 0, 1e-12, frequency: 0, frequencyVariance: 1e-20);
        double offset = 0;
        for (int i = 1; i <= 7; i++)
        {
            offset += 16e-6; // the frequency moved by 1 ppm; the model thinks it cannot have
            servo.Update(Samples.At(16 * i), offset, 1e-10);
        }
        double before = servo.FrequencyStdDev;
        servo.Update(Samples.At(16 * 8), offset + 16e-6, 1e-10);
        Assert.True(servo.FrequencyStdDev > 1.5 * before, $"{servo.FrequencyStdDev} vs {before}");
    }
}
