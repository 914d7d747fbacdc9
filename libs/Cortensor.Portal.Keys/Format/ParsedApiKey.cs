namespace Cortensor.Portal.Keys.Format;

/// <summary>What a well-formed key says about itself before any lookup.</summary>
/// <param name="Environment">Live or test, from the prefix.</param>
/// <param name="DisplayPrefix">The prefix plus the first 8 body characters, for example <c>pk_test_AbCd1234</c>. Safe to log.</param>
public readonly record struct ParsedApiKey(ApiKeyEnvironment Environment, string DisplayPrefix);
