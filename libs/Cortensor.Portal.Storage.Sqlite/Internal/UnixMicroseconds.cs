namespace Cortensor.Portal.Storage.Sqlite.Internal;

/// <summary>Timestamps as stored: INTEGER microseconds since the Unix epoch, UTC. Sub-microsecond ticks are dropped.</summary>
internal static class UnixMicroseconds
{
    private static readonly long EpochTicks = DateTime.UnixEpoch.Ticks;

    public static long From(DateTimeOffset value)
    {
        var ticks = value.UtcTicks;
        return (ticks - EpochTicks - (ticks % TimeSpan.TicksPerMicrosecond)) / TimeSpan.TicksPerMicrosecond;
    }

    public static object FromNullable(DateTimeOffset? value) => value is { } v ? From(v) : DBNull.Value;

    public static DateTimeOffset ToDateTimeOffset(long microseconds) =>
        new(EpochTicks + (microseconds * TimeSpan.TicksPerMicrosecond), TimeSpan.Zero);
}
