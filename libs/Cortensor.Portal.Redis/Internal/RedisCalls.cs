namespace Cortensor.Portal.Redis.Internal;

/// <summary>Bounds a Redis call by the hot-path operation timeout.</summary>
internal static class RedisCalls
{
    /// <summary>
    /// Awaits <paramref name="task"/> for at most <paramref name="timeout"/>. On timeout or cancellation the call is
    /// abandoned (its late failure is observed, so it does not surface as an unobserved task exception).
    /// </summary>
    /// <exception cref="TimeoutException">Redis did not answer within <paramref name="timeout"/>.</exception>
    public static async Task<T> WithTimeout<T>(Task<T> task, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            return await task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            Observe(task);
            throw;
        }
    }

    /// <inheritdoc cref="WithTimeout{T}(Task{T}, TimeSpan, CancellationToken)"/>
    public static async Task WithTimeout(Task task, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            Observe(task);
            throw;
        }
    }

    private static void Observe(Task task)
        => _ = task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
}
