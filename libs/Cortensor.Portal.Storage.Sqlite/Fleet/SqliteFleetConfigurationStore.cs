using System.Globalization;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Internal;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cortensor.Portal.Storage.Sqlite.Fleet;

/// <summary>
/// <see cref="IFleetConfigurationStore"/> over <c>routers</c>, <c>router_pools</c>, <c>router_pool_members</c> and
/// <c>router_pool_models</c>. Router keys are never written: only <see cref="RouterOptions.ApiKeyRef"/>.
/// Thread-safe: every call uses its own pooled connection.
/// </summary>
/// <remarks>
/// <para>
/// Every write runs in one <c>BEGIN IMMEDIATE</c> transaction, so the reference checks (member routers exist, the model's
/// pool exists, no pool uses a router being deleted) and the change cannot interleave with another writer.
/// <see cref="SavePoolAsync"/> deletes the pool's members and inserts the new list, in order, in that transaction.
/// <see cref="LoadAsync"/> reads all four tables in one read transaction (one snapshot).
/// </para>
/// <para>
/// Ids (router id, pool name, model alias) match case-insensitively, as the <see cref="FleetOptions"/> dictionaries do:
/// saving <c>Router-1</c> over <c>router-1</c> updates that row and keeps its stored spelling. <c>created_at</c> is set
/// from the <see cref="TimeProvider"/> when a row is first inserted and kept on replace. Routers need a
/// <see cref="RouterOptions.BaseUrl"/>: simulated routers (<see cref="RouterOptions.Simulated"/>) exist only in configuration.
/// A pool's <see cref="PoolOptions.Enabled"/> maps to <c>state</c> <c>active</c>/<c>disabled</c>; a pool put in
/// <c>draining</c> by hand loads as disabled.
/// </para>
/// </remarks>
public sealed partial class SqliteFleetConfigurationStore : IFleetConfigurationStore
{
    private readonly SqliteDatabase _database;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;

    public SqliteFleetConfigurationStore(SqliteDatabase database, TimeProvider? timeProvider = null, ILogger<SqliteFleetConfigurationStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(database);
        _database = database;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    public async Task<FleetOptions> LoadAsync(CancellationToken cancellationToken = default)
    {
        var options = new FleetOptions();
        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var tx = connection.BeginTransaction(deferred: true);

            await ReadAsync(connection, tx, "SELECT id, base_url, protocol, api_version, api_key_ref, enabled, url_form FROM routers ORDER BY id;", reader =>
            {
                options.Routers[reader.GetString(0)] = new RouterOptions
                {
                    BaseUrl = new Uri(reader.GetString(1), UriKind.Absolute),
                    ApiKey = null,
                    ApiKeyRef = reader.GetNullableString(4),
                    Protocol = FleetStoredNames.ParseProtocol(reader.GetString(2)),
                    ApiVersion = reader.GetString(3),
                    Enabled = reader.GetInt64(5) != 0,
                    UrlForm = FleetStoredNames.ParseUrlForm(reader.GetString(6)),
                };
            }, cancellationToken).ConfigureAwait(false);

            await ReadAsync(connection, tx, """
                SELECT name, state, prompt_format, prompt_type, task_timeout_seconds, precommit_timeout_seconds,
                       http_timeout_slack_seconds, upstream_model, default_max_tokens, default_temperature, default_top_p, default_top_k,
                       router_queues, stream_queue_length, stream_queue_wait_seconds
                FROM router_pools ORDER BY name;
                """, reader =>
            {
                options.Pools[reader.GetString(0)] = new PoolOptions
                {
                    Enabled = reader.GetString(1) == "active",
                    PromptFormat = FleetStoredNames.ParsePromptFormat(reader.GetString(2)),
                    PromptType = reader.GetNullableInt32(3),
                    TaskTimeoutSeconds = reader.GetInt32(4),
                    PrecommitTimeoutSeconds = reader.GetNullableInt32(5),
                    HttpTimeoutSlackSeconds = reader.GetInt32(6),
                    UpstreamModel = reader.GetNullableString(7),
                    Defaults = new SamplingDefaults
                    {
                        MaxTokens = reader.GetInt32(8),
                        Temperature = reader.GetNullableDouble(9),
                        TopP = reader.GetNullableDouble(10),
                        TopK = reader.GetNullableInt32(11),
                    },
                    RouterQueues = FleetStoredNames.ParseRouterQueues(reader.GetString(12)),
                    StreamQueueLength = reader.GetInt32(13),
                    StreamQueueWaitSeconds = reader.GetInt32(14),
                };
            }, cancellationToken).ConfigureAwait(false);

            await ReadAsync(connection, tx, """
                SELECT pool_name, router_id, session_id, enabled FROM router_pool_members
                ORDER BY pool_name, position, router_id, session_id;
                """, reader =>
            {
                if (options.Pools.TryGetValue(reader.GetString(0), out var pool))
                {
                    pool.Members.Add(new PoolMemberOptions
                    {
                        Router = reader.GetString(1),
                        SessionId = SessionFromText(reader.GetString(2)),
                        Enabled = reader.GetInt64(3) != 0,
                    });
                }
            }, cancellationToken).ConfigureAwait(false);

            await ReadAsync(connection, tx, """
                SELECT alias, pool_name, context_tokens, max_output_tokens, enabled, owned_by, created_unix_seconds
                FROM router_pool_models ORDER BY alias;
                """, reader =>
            {
                options.Models[reader.GetString(0)] = new ModelOptions
                {
                    Pool = reader.GetString(1),
                    ContextTokens = reader.GetInt32(2),
                    MaxOutputTokens = reader.GetInt32(3),
                    Enabled = reader.GetInt64(4) != 0,
                    OwnedBy = reader.GetString(5),
                    Created = reader.GetInt64(6),
                };
            }, cancellationToken).ConfigureAwait(false);

            tx.Commit();
        }

        return options;
    }

    /// <exception cref="ArgumentException">The id is empty, the router has no absolute <see cref="RouterOptions.BaseUrl"/>, or its <see cref="RouterOptions.ApiKeyRef"/> is not <c>env:NAME</c> (<see cref="RouterKeyReference"/>).</exception>
    public async Task SaveRouterAsync(string routerId, RouterOptions router, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(routerId);
        ArgumentNullException.ThrowIfNull(router);
        if (router.Simulated)
        {
            throw new ArgumentException($"Router '{routerId}' is simulated; simulated routers live in configuration only.", nameof(router));
        }

        if (router.BaseUrl is not { IsAbsoluteUri: true } baseUrl)
        {
            throw new ArgumentException($"Router '{routerId}' needs an absolute BaseUrl to be stored (simulated routers live in configuration only).", nameof(router));
        }

        // Only references the fleet resolves: anything else would load as a router that cannot start.
        if (router.ApiKeyRef is not null && !RouterKeyReference.IsSupported(router.ApiKeyRef))
        {
            throw new ArgumentException($"Router '{routerId}': ApiKeyRef must be {RouterKeyReference.EnvironmentPrefix}NAME, the environment variable that holds the router's key.", nameof(router));
        }

        ArgumentException.ThrowIfNullOrEmpty(router.ApiVersion, nameof(router));
        var protocol = FleetStoredNames.Of(router.Protocol);
        var urlForm = FleetStoredNames.Of(router.UrlForm);
        if (router.ApiKey is not null)
        {
            Log.RouterApiKeyNotStored(_logger, routerId);
        }

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var tx = connection.BeginTransaction(deferred: false);
            var storedId = await FindIdAsync(connection, tx, "SELECT id FROM routers WHERE id = $id COLLATE NOCASE LIMIT 1;", routerId, cancellationToken).ConfigureAwait(false);

            using var command = connection.CreateCommand();
            command.Transaction = tx;
            command.CommandText = storedId is null
                ? """
                  INSERT INTO routers (id, base_url, protocol, api_version, api_key_ref, enabled, created_at, url_form)
                  VALUES ($id, $base_url, $protocol, $api_version, $api_key_ref, $enabled, $created_at, $url_form);
                  """
                : """
                  UPDATE routers SET base_url = $base_url, protocol = $protocol, api_version = $api_version,
                                     api_key_ref = $api_key_ref, enabled = $enabled, url_form = $url_form
                  WHERE id = $id;
                  """;
            var p = command.Parameters;
            p.AddWithValue("$id", storedId ?? routerId);
            p.AddWithValue("$base_url", baseUrl.OriginalString);
            p.AddWithValue("$protocol", protocol);
            p.AddWithValue("$api_version", router.ApiVersion);
            p.AddWithValue("$api_key_ref", SqliteValues.OrDbNull(router.ApiKeyRef));
            p.AddWithValue("$enabled", router.Enabled ? 1 : 0);
            p.AddWithValue("$created_at", UnixMicroseconds.From(_timeProvider.GetUtcNow()));
            p.AddWithValue("$url_form", urlForm);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            tx.Commit();
        }
    }

    /// <exception cref="InvalidOperationException">A pool still has the router as a member.</exception>
    public async Task<bool> DeleteRouterAsync(string routerId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(routerId);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var tx = connection.BeginTransaction(deferred: false);
            var storedId = await FindIdAsync(connection, tx, "SELECT id FROM routers WHERE id = $id COLLATE NOCASE LIMIT 1;", routerId, cancellationToken).ConfigureAwait(false);
            if (storedId is null)
            {
                return false;
            }

            var pool = await FindIdAsync(connection, tx, "SELECT pool_name FROM router_pool_members WHERE router_id = $id ORDER BY pool_name LIMIT 1;", storedId, cancellationToken).ConfigureAwait(false);
            if (pool is not null)
            {
                throw new InvalidOperationException($"Router '{storedId}' cannot be deleted: pool '{pool}' still uses it. Remove it from every pool first.");
            }

            using var command = connection.CreateCommand();
            command.Transaction = tx;
            command.CommandText = "DELETE FROM routers WHERE id = $id;";
            command.Parameters.AddWithValue("$id", storedId);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            tx.Commit();
            return true;
        }
    }

    /// <exception cref="ArgumentException">A member has no router, or the list names the same (router, session) twice.</exception>
    /// <exception cref="InvalidOperationException">A member router does not exist; nothing is changed.</exception>
    public async Task SavePoolAsync(string poolName, PoolOptions pool, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(poolName);
        ArgumentNullException.ThrowIfNull(pool);
        var members = pool.Members ?? [];
        var seen = new HashSet<(string, long?)>();
        foreach (var member in members)
        {
            if (member is null || string.IsNullOrWhiteSpace(member.Router))
            {
                throw new ArgumentException($"Pool '{poolName}' has a member without a router.", nameof(pool));
            }

            if (!seen.Add((member.Router.ToUpperInvariant(), member.SessionId)))
            {
                throw new ArgumentException($"Pool '{poolName}' lists router '{member.Router}' session '{member.SessionId}' twice.", nameof(pool));
            }
        }

        var defaults = pool.Defaults ?? new SamplingDefaults();
        var promptFormat = FleetStoredNames.Of(pool.PromptFormat);
        var routerQueues = FleetStoredNames.Of(pool.RouterQueues);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var tx = connection.BeginTransaction(deferred: false);

            var routerIds = new string[members.Count];
            for (var i = 0; i < members.Count; i++)
            {
                routerIds[i] = await FindIdAsync(connection, tx, "SELECT id FROM routers WHERE id = $id COLLATE NOCASE LIMIT 1;", members[i].Router, cancellationToken).ConfigureAwait(false)
                    ?? throw new InvalidOperationException($"Pool '{poolName}' names router '{members[i].Router}', which is not stored. Save the router first.");
            }

            var storedName = await FindIdAsync(connection, tx, "SELECT name FROM router_pools WHERE name = $id COLLATE NOCASE LIMIT 1;", poolName, cancellationToken).ConfigureAwait(false);
            var name = storedName ?? poolName;

            using (var command = connection.CreateCommand())
            {
                command.Transaction = tx;
                command.CommandText = storedName is null
                    ? """
                      INSERT INTO router_pools (name, state, prompt_format, task_timeout_seconds, upstream_model, created_at,
                          prompt_type, precommit_timeout_seconds, http_timeout_slack_seconds,
                          default_max_tokens, default_temperature, default_top_p, default_top_k,
                          router_queues, stream_queue_length, stream_queue_wait_seconds)
                      VALUES ($name, $state, $prompt_format, $task_timeout, $upstream_model, $created_at,
                          $prompt_type, $precommit_timeout, $http_slack,
                          $max_tokens, $temperature, $top_p, $top_k,
                          $router_queues, $stream_queue_length, $stream_queue_wait);
                      """
                    : """
                      UPDATE router_pools SET state = $state, prompt_format = $prompt_format, task_timeout_seconds = $task_timeout,
                          upstream_model = $upstream_model, prompt_type = $prompt_type, precommit_timeout_seconds = $precommit_timeout,
                          http_timeout_slack_seconds = $http_slack, default_max_tokens = $max_tokens,
                          default_temperature = $temperature, default_top_p = $top_p, default_top_k = $top_k,
                          router_queues = $router_queues, stream_queue_length = $stream_queue_length,
                          stream_queue_wait_seconds = $stream_queue_wait
                      WHERE name = $name;
                      """;
                var p = command.Parameters;
                p.AddWithValue("$name", name);
                p.AddWithValue("$state", pool.Enabled ? "active" : "disabled");
                p.AddWithValue("$prompt_format", promptFormat);
                p.AddWithValue("$task_timeout", pool.TaskTimeoutSeconds);
                p.AddWithValue("$upstream_model", SqliteValues.OrDbNull(pool.UpstreamModel));
                p.AddWithValue("$created_at", UnixMicroseconds.From(_timeProvider.GetUtcNow()));
                p.AddWithValue("$prompt_type", SqliteValues.OrDbNull(pool.PromptType));
                p.AddWithValue("$precommit_timeout", SqliteValues.OrDbNull(pool.PrecommitTimeoutSeconds));
                p.AddWithValue("$http_slack", pool.HttpTimeoutSlackSeconds);
                p.AddWithValue("$max_tokens", defaults.MaxTokens);
                p.AddWithValue("$temperature", SqliteValues.OrDbNull(defaults.Temperature));
                p.AddWithValue("$top_p", SqliteValues.OrDbNull(defaults.TopP));
                p.AddWithValue("$top_k", SqliteValues.OrDbNull(defaults.TopK));
                p.AddWithValue("$router_queues", routerQueues);
                p.AddWithValue("$stream_queue_length", pool.StreamQueueLength);
                p.AddWithValue("$stream_queue_wait", pool.StreamQueueWaitSeconds);
                try
                {
                    await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (SqliteException ex) when (SqliteValues.IsConstraintViolation(ex))
                {
                    throw new ArgumentException($"Pool '{poolName}' has a setting out of range: {ex.Message}", nameof(pool), ex);
                }
            }

            using (var delete = connection.CreateCommand())
            {
                delete.Transaction = tx;
                delete.CommandText = "DELETE FROM router_pool_members WHERE pool_name = $name;";
                delete.Parameters.AddWithValue("$name", name);
                await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            if (members.Count > 0)
            {
                using var insert = connection.CreateCommand();
                insert.Transaction = tx;
                insert.CommandText = """
                    INSERT INTO router_pool_members (pool_name, router_id, session_id, enabled, position)
                    VALUES ($name, $router_id, $session_id, $enabled, $position);
                    """;
                insert.Parameters.AddWithValue("$name", name);
                var routerId = insert.Parameters.Add("$router_id", SqliteType.Text);
                var sessionId = insert.Parameters.Add("$session_id", SqliteType.Text);
                var enabled = insert.Parameters.Add("$enabled", SqliteType.Integer);
                var position = insert.Parameters.Add("$position", SqliteType.Integer);
                insert.Prepare();
                for (var i = 0; i < members.Count; i++)
                {
                    routerId.Value = routerIds[i];
                    sessionId.Value = SessionToText(members[i].SessionId);
                    enabled.Value = members[i].Enabled ? 1 : 0;
                    position.Value = i;
                    await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }
            }

            tx.Commit();
        }
    }

    /// <exception cref="InvalidOperationException">The model's pool does not exist; nothing is changed.</exception>
    public async Task SaveModelAsync(string alias, ModelOptions model, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(alias);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(model.Pool, nameof(model));

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var tx = connection.BeginTransaction(deferred: false);
            var poolName = await FindIdAsync(connection, tx, "SELECT name FROM router_pools WHERE name = $id COLLATE NOCASE LIMIT 1;", model.Pool, cancellationToken).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"Model '{alias}' names pool '{model.Pool}', which is not stored. Save the pool first.");
            var storedAlias = await FindIdAsync(connection, tx, "SELECT alias FROM router_pool_models WHERE alias = $id COLLATE NOCASE LIMIT 1;", alias, cancellationToken).ConfigureAwait(false);

            using var command = connection.CreateCommand();
            command.Transaction = tx;
            command.CommandText = storedAlias is null
                ? """
                  INSERT INTO router_pool_models (alias, pool_name, context_tokens, max_output_tokens, enabled, created_at, owned_by, created_unix_seconds)
                  VALUES ($alias, $pool_name, $context_tokens, $max_output_tokens, $enabled, $created_at, $owned_by, $created);
                  """
                : """
                  UPDATE router_pool_models SET pool_name = $pool_name, context_tokens = $context_tokens, max_output_tokens = $max_output_tokens,
                      enabled = $enabled, owned_by = $owned_by, created_unix_seconds = $created
                  WHERE alias = $alias;
                  """;
            var p = command.Parameters;
            p.AddWithValue("$alias", storedAlias ?? alias);
            p.AddWithValue("$pool_name", poolName);
            p.AddWithValue("$context_tokens", model.ContextTokens);
            p.AddWithValue("$max_output_tokens", model.MaxOutputTokens);
            p.AddWithValue("$enabled", model.Enabled ? 1 : 0);
            p.AddWithValue("$created_at", UnixMicroseconds.From(_timeProvider.GetUtcNow()));
            p.AddWithValue("$owned_by", model.OwnedBy ?? "cortensor");
            p.AddWithValue("$created", model.Created);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            tx.Commit();
        }
    }

    public async Task<bool> DeleteModelAsync(string alias, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(alias);

        var connection = await _database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM router_pool_models WHERE alias = $alias COLLATE NOCASE;";
            command.Parameters.AddWithValue("$alias", alias);
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
        }
    }

    private static async Task<string?> FindIdAsync(SqliteConnection connection, SqliteTransaction tx, string sql, string id, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        command.Parameters.AddWithValue("$id", id);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
    }

    private static async Task ReadAsync(SqliteConnection connection, SqliteTransaction tx, string sql, Action<SqliteDataReader> read, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                read(reader);
            }
        }
    }

    /// <summary>Members of OpenAI-compatible routers have no session; the key column stores them as the empty string.</summary>
    private static string SessionToText(long? sessionId) => sessionId?.ToString(CultureInfo.InvariantCulture) ?? "";

    private static long? SessionFromText(string text) =>
        text.Length == 0 ? null
        : long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) ? value
        : throw new InvalidOperationException($"Session id '{text}' in router_pool_members is not a number.");

    // Cortensor.Portal.Storage.Sqlite uses EventIds 6000–6999; the fleet store 6100–6109.
    private static partial class Log
    {
        [LoggerMessage(EventId = 6100, EventName = "RouterApiKeyNotStored", Level = LogLevel.Debug,
            Message = "Router {RouterId} was saved with an ApiKey; the key is not stored, only ApiKeyRef")]
        public static partial void RouterApiKeyNotStored(ILogger logger, string routerId);
    }
}
