using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;

namespace Cortensor.Portal.Benchmarks.Load;

/// <summary>
/// An open-loop HTTP load generator: request <c>i</c> is scheduled at <c>start + i / rate</c> and sent then by a
/// dedicated timer thread whether or not earlier requests have finished, so a stall in the server shows up as
/// latency instead of as a quietly lower send rate (no coordinated omission). Latency is measured from the
/// <b>scheduled</b> send time to the end of the response body. Bounded: <c>rate × duration</c> requests.
/// </summary>
/// <remarks>
/// The timer sleeps with microsecond resolution (<c>usleep</c>) where the platform has it, so it does not spin on a
/// core the server needs; when it wakes late it sends every request that is due at once. How late it sent is kept
/// per request (<see cref="LoadResult.SendLag"/>) so a generator that cannot keep up is visible. A gateway's
/// <c>Server-Timing</c> (<c>gateway</c>, <c>limits</c> and <c>router</c> durations) is kept per request too, so the time a gateway
/// spent inside its own handler can be told apart from time lost outside it (queues, scheduling).
/// </remarks>
internal sealed class OpenLoopLoadGenerator
{
    private readonly HttpClient _client;
    private readonly Func<HttpRequestMessage> _createRequest;

    /// <param name="client">Sends the requests; see <see cref="CreateHandler"/>.</param>
    /// <param name="createRequest">Builds a fresh request for each send (a request message cannot be sent twice).</param>
    public OpenLoopLoadGenerator(HttpClient client, Func<HttpRequestMessage> createRequest)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(createRequest);
        _client = client;
        _createRequest = createRequest;
    }

    /// <summary>A handler for load: up to <paramref name="maxConnections"/> kept-alive HTTP/1.1 connections per server, no proxy, no cookies.</summary>
    public static SocketsHttpHandler CreateHandler(int maxConnections) => new()
    {
        MaxConnectionsPerServer = maxConnections,
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
        ConnectTimeout = TimeSpan.FromSeconds(10),
        UseProxy = false,
        UseCookies = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
    };

    /// <summary>Sends <c>round(rate × duration)</c> requests at a constant rate and waits for all of them.</summary>
    /// <param name="rate">Requests per second.</param>
    /// <param name="duration">How long to send for.</param>
    /// <param name="drainTimeout">How long to wait after the last send; requests still open then count as failed.</param>
    /// <param name="cancellationToken">Stops sending.</param>
    public async Task<LoadResult> RunAsync(double rate, TimeSpan duration, TimeSpan drainTimeout, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rate);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(duration, TimeSpan.Zero);
        var total = checked((int)Math.Round(rate * duration.TotalSeconds));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(total, nameof(duration));

        var run = new Run(total);
        var interval = Stopwatch.Frequency / rate;
        var start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 1000); // 1 ms from now
        run.Start = start;
        var timer = new Thread(() => Schedule(run, start, interval, cancellationToken))
        {
            IsBackground = true,
            Name = "open-loop timer",
            Priority = ThreadPriority.AboveNormal,
        };
        timer.Start();

        try
        {
            await run.Done.Task.WaitAsync(duration + drainTimeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            // Reported below as requests without a response.
        }

        timer.Join();
        return run.ToResult(rate);
    }

    private void Schedule(Run run, long start, double interval, CancellationToken cancellationToken)
    {
        var i = 0;
        while (i < run.Total && !cancellationToken.IsCancellationRequested)
        {
            var due = start + (long)(i * interval);
            var now = Stopwatch.GetTimestamp();
            if (due > now)
            {
                SleepMicroseconds((due - now) * 1_000_000 / Stopwatch.Frequency);
                continue;
            }

            // Everything that is due goes now; each keeps its own scheduled time.
            do
            {
                run.SendLag[i] = now - due;
                _ = SendAsync(run, i, due);
                i++;
                due = start + (long)(i * interval);
            }
            while (i < run.Total && due <= now);
        }

        // Requests never sent (cancelled) complete as failures so the wait ends.
        for (; i < run.Total; i++)
        {
            run.Complete(i, 0, LoadResult.NotSent, Stopwatch.GetTimestamp());
        }
    }

    private async Task SendAsync(Run run, int index, long scheduled)
    {
        int status;
        try
        {
            using var request = _createRequest();
            using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseContentRead);
            status = (int)response.StatusCode;
            if (response.Headers.NonValidated.TryGetValues("Server-Timing", out var timing))
            {
                var header = timing.ToString();
                run.GatewayMs[index] = ServerTimingHeader.Read(header, "gateway");
                run.LimitsMs[index] = ServerTimingHeader.Read(header, "limits");
                run.RouterMs[index] = ServerTimingHeader.Read(header, "router");
            }
        }
        catch (HttpRequestException)
        {
            status = LoadResult.TransportError;
        }
        catch (TaskCanceledException)
        {
            status = LoadResult.ClientTimeout;
        }

        var end = Stopwatch.GetTimestamp();
        run.Complete(index, end - scheduled, status, end);
    }

    private static void SleepMicroseconds(long microseconds)
    {
        if (microseconds <= 0)
        {
            return;
        }

        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            _ = NativeMethods.usleep((uint)Math.Min(microseconds, 500_000));
            return;
        }

        Thread.Sleep(TimeSpan.FromMicroseconds(Math.Max(1000, microseconds)));
    }

    private sealed class Run(int total)
    {
        public readonly int Total = total;
        public readonly long[] Latency = new long[total];
        public readonly int[] Status = new int[total];
        public readonly long[] SendLag = new long[total];
        public readonly double[] GatewayMs = Filled(total);
        public readonly double[] LimitsMs = Filled(total);
        public readonly double[] RouterMs = Filled(total);
        public readonly TaskCompletionSource Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public long Start;
        private int _completed;
        private long _lastEnd;

        public void Complete(int index, long latency, int status, long end)
        {
            Latency[index] = latency;
            Status[index] = status;
            var last = Volatile.Read(ref _lastEnd);
            while (end > last)
            {
                var seen = Interlocked.CompareExchange(ref _lastEnd, end, last);
                if (seen == last)
                {
                    break;
                }

                last = seen;
            }

            if (Interlocked.Increment(ref _completed) == Total)
            {
                Done.TrySetResult();
            }
        }

        public LoadResult ToResult(double rate)
        {
            var completed = Volatile.Read(ref _completed);
            var statuses = (int[])Status.Clone();
            for (var i = 0; i < statuses.Length; i++)
            {
                if (statuses[i] == 0)
                {
                    statuses[i] = LoadResult.NoResponse; // still open after the drain timeout
                }
            }

            var end = completed == Total ? Volatile.Read(ref _lastEnd) : Stopwatch.GetTimestamp();
            return new LoadResult(rate, (long[])Latency.Clone(), statuses, (long[])SendLag.Clone(), Stopwatch.GetElapsedTime(Start, end))
            {
                GatewayMs = (double[])GatewayMs.Clone(),
                LimitsMs = (double[])LimitsMs.Clone(),
                RouterMs = (double[])RouterMs.Clone(),
            };
        }

        private static double[] Filled(int length)
        {
            var values = new double[length];
            Array.Fill(values, double.NaN);
            return values;
        }
    }

    private static class NativeMethods
    {
        [DllImport("libc", SetLastError = false)]
#pragma warning disable SYSLIB1054 // a blittable one-liner; LibraryImport would need unsafe blocks for nothing.
        public static extern int usleep(uint microseconds);
#pragma warning restore SYSLIB1054
    }
}

/// <summary>What one <see cref="OpenLoopLoadGenerator.RunAsync"/> measured. Latencies and lags are Stopwatch ticks, by request index.</summary>
internal sealed record LoadResult(double OfferedRate, long[] Latency, int[] Status, long[] SendLag, TimeSpan Elapsed)
{
    /// <summary>Status of a request that failed below HTTP (connection refused or reset).</summary>
    public const int TransportError = -1;

    /// <summary>Status of a request the client gave up on (<see cref="HttpClient.Timeout"/>).</summary>
    public const int ClientTimeout = -2;

    /// <summary>Status of a request still open when the run stopped waiting.</summary>
    public const int NoResponse = -3;

    /// <summary>Status of a request never sent (the run was cancelled).</summary>
    public const int NotSent = -4;

    /// <summary>By request index: the gateway's own <c>Server-Timing</c> <c>gateway;dur</c> in ms; NaN without one.</summary>
    public double[] GatewayMs { get; init; } = [];

    /// <summary>By request index: <c>limits;dur</c> in ms (the wait for the rate-limit decision); NaN without one.</summary>
    public double[] LimitsMs { get; init; } = [];

    /// <summary>By request index: <c>router;dur</c> in ms (the upstream call as the gateway saw it); NaN without one.</summary>
    public double[] RouterMs { get; init; } = [];

    public int Requests => Status.Length;

    /// <summary>Requests answered with 200.</summary>
    public int Ok => Status.Count(static s => s == 200);

    /// <summary>Requests not answered with 200, failures below HTTP included.</summary>
    public int NotOk => Requests - Ok;

    /// <summary>Responses of any status per second, from the first scheduled send to the last response.</summary>
    public double AchievedRate => Status.Count(static s => s > 0) / Elapsed.TotalSeconds;

    /// <summary>Latencies of the requests that got an HTTP response (any status).</summary>
    public IEnumerable<long> AnsweredLatencies => Latency.Where((_, i) => Status[i] > 0);
}

/// <summary>Nearest-rank percentiles of Stopwatch-tick samples.</summary>
internal sealed class LatencyDistribution
{
    private readonly long[] _sorted;

    public LatencyDistribution(IEnumerable<long> ticks)
    {
        ArgumentNullException.ThrowIfNull(ticks);
        _sorted = [.. ticks];
        Array.Sort(_sorted);
    }

    public int Count => _sorted.Length;

    /// <summary>The <paramref name="p"/> quantile (0..1) in milliseconds; NaN without samples.</summary>
    public double Milliseconds(double p)
    {
        if (_sorted.Length == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(p * _sorted.Length) - 1;
        return _sorted[Math.Clamp(rank, 0, _sorted.Length - 1)] * 1000.0 / Stopwatch.Frequency;
    }

    public double MaxMilliseconds => Milliseconds(1);

    /// <summary>The nearest-rank <paramref name="p"/> quantile (0..1) of plain values; NaN without values. Does not change <paramref name="values"/>.</summary>
    public static double NearestRank(double[] values, double p)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Length == 0)
        {
            return double.NaN;
        }

        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        return sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
