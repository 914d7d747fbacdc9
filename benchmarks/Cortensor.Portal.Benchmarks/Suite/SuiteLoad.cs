using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Cortensor.Portal.Benchmarks.Suite;

/// <summary>Closed-loop saturation and streaming loads (the open-loop fixed-rate load is <see cref="Load.OpenLoopLoadGenerator"/>).</summary>
internal static class SuiteLoad
{
    /// <summary>
    /// <paramref name="workers"/> loops, each sending the next request as soon as the last response body has been
    /// read, for <paramref name="duration"/>: the most this path serves on this machine.
    /// </summary>
    public static async Task<SaturationResult> ClosedLoopAsync(HttpClient client, Func<HttpRequestMessage> create, int workers, TimeSpan duration)
    {
        var latencies = new ConcurrentBag<long[]>();
        var failures = 0;
        var start = Stopwatch.GetTimestamp();
        var end = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var tasks = Enumerable.Range(0, workers).Select(_ => Task.Run(async () =>
        {
            var mine = new List<long>(4096);
            while (Stopwatch.GetTimestamp() < end)
            {
                var t0 = Stopwatch.GetTimestamp();
                try
                {
                    using var request = create();
                    using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead);
                    if ((int)response.StatusCode != 200)
                    {
                        Interlocked.Increment(ref failures);
                        continue;
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    Interlocked.Increment(ref failures);
                    continue;
                }

                mine.Add(Stopwatch.GetTimestamp() - t0);
            }

            latencies.Add([.. mine]);
        })).ToArray();
        await Task.WhenAll(tasks);
        var elapsed = Stopwatch.GetElapsedTime(start);
        var all = latencies.SelectMany(static l => l).ToArray();
        return new SaturationResult(workers, all, failures, elapsed);
    }

    /// <summary>
    /// Open-loop streams: request <c>i</c> is sent at <c>start + i / rate</c>; for each, the time from the scheduled
    /// send to the first <c>data:</c> line (time to first token) and the gaps between later <c>data:</c> lines.
    /// </summary>
    public static async Task<StreamResult> StreamOpenLoopAsync(HttpClient client, Func<HttpRequestMessage> create, double rate, TimeSpan duration)
    {
        var total = (int)Math.Round(rate * duration.TotalSeconds);
        var ttft = new long[total];
        var gaps = new ConcurrentBag<long[]>();
        var failures = 0;
        var pending = new ConcurrentBag<Task>();
        await Schedule(total, rate, (i, scheduled) => pending.Add(Task.Run(async () =>
        {
            try
            {
                using var request = create();
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                if ((int)response.StatusCode != 200)
                {
                    Interlocked.Increment(ref failures);
                    return;
                }

                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                var mine = new List<long>(32);
                long last = 0;
                while (await reader.ReadLineAsync() is { } line)
                {
                    if (!line.StartsWith("data:", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    var now = Stopwatch.GetTimestamp();
                    if (last == 0)
                    {
                        ttft[i] = now - scheduled;
                    }
                    else
                    {
                        mine.Add(now - last);
                    }

                    last = now;
                }

                gaps.Add([.. mine]);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
            {
                Interlocked.Increment(ref failures);
            }
        })));
        await Task.WhenAll(pending);
        return new StreamResult([.. ttft.Where(static t => t > 0)], [.. gaps.SelectMany(static g => g)], failures, total);
    }

    /// <summary>Calls <paramref name="send"/> for request <c>i</c> at <c>start + i / rate</c> (scheduled timestamp passed), from a timer thread that sleeps between sends.</summary>
    public static Task Schedule(int total, double rate, Action<int, long> send)
    {
        var completion = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var interval = Stopwatch.Frequency / rate;
        var thread = new Thread(() =>
        {
            var start = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 1000);
            var i = 0;
            while (i < total)
            {
                var due = start + (long)(i * interval);
                var now = Stopwatch.GetTimestamp();
                if (due > now)
                {
                    var micro = (due - now) * 1_000_000 / Stopwatch.Frequency;
                    if (OperatingSystem.IsLinux())
                    {
                        _ = NativeMethods.usleep((uint)Math.Min(micro, 500_000));
                    }
                    else
                    {
                        Thread.Sleep(TimeSpan.FromMicroseconds(Math.Max(1000, micro)));
                    }

                    continue;
                }

                send(i, due);
                i++;
            }

            completion.SetResult();
        })
        {
            IsBackground = true,
            Name = "suite timer",
        };
        thread.Start();
        return completion.Task;
    }

    private static class NativeMethods
    {
        [DllImport("libc", SetLastError = false)]
#pragma warning disable SYSLIB1054 // a blittable one-liner.
        public static extern int usleep(uint microseconds);
#pragma warning restore SYSLIB1054
    }
}

internal sealed record SaturationResult(int Workers, long[] Latency, int Failures, TimeSpan Elapsed)
{
    public double Rate => Latency.Length / Elapsed.TotalSeconds;
}

internal sealed record StreamResult(long[] TimeToFirstToken, long[] ChunkGaps, int Failures, int Requests);
