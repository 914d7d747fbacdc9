namespace Cortensor.Portal.Testing.Unkey;

/// <summary>
/// verifyKey's <c>permissions</c> query as <c>pkg/rbac</c> (lexer.go, parser.go, rbac.go) reads it: permission slugs of
/// letters, digits and <c>. _ - * : /</c>; <c>AND</c> binds tighter than <c>OR</c> (either in any case); parentheses
/// group; a leaf matches a granted permission exactly.
/// </summary>
public abstract class PermissionQuery
{
    public abstract bool IsSatisfiedBy(IReadOnlyCollection<string> granted);

    /// <summary>The parsed query, or null when it does not parse (Unkey answers 400 <c>permissions_query_syntax_error</c>).</summary>
    public static PermissionQuery? TryParse(string text)
    {
        var tokens = Tokenize(text);
        if (tokens is null)
        {
            return null;
        }

        var position = 0;
        var query = ParseOr(tokens, ref position);
        return query is not null && position == tokens.Count ? query : null;
    }

    private static List<string>? Tokenize(string text)
    {
        var tokens = new List<string>();
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
            }
            else if (c is '(' or ')')
            {
                tokens.Add(c.ToString());
                i++;
            }
            else if (IsPermissionChar(c))
            {
                var start = i;
                while (i < text.Length && IsPermissionChar(text[i]))
                {
                    i++;
                }

                tokens.Add(text[start..i]);
            }
            else
            {
                return null;
            }
        }

        return tokens;
    }

    private static bool IsPermissionChar(char c) => char.IsLetterOrDigit(c) || c is '.' or '_' or '-' or '*' or ':' or '/';

    private static bool IsOperator(string token, string op) => string.Equals(token, op, StringComparison.OrdinalIgnoreCase);

    private static PermissionQuery? ParseOr(List<string> tokens, ref int position)
    {
        var left = ParseAnd(tokens, ref position);
        while (left is not null && position < tokens.Count && IsOperator(tokens[position], "OR"))
        {
            position++;
            var right = ParseAnd(tokens, ref position);
            left = right is null ? null : new Or(left, right);
        }

        return left;
    }

    private static PermissionQuery? ParseAnd(List<string> tokens, ref int position)
    {
        var left = ParseTerm(tokens, ref position);
        while (left is not null && position < tokens.Count && IsOperator(tokens[position], "AND"))
        {
            position++;
            var right = ParseTerm(tokens, ref position);
            left = right is null ? null : new And(left, right);
        }

        return left;
    }

    private static PermissionQuery? ParseTerm(List<string> tokens, ref int position)
    {
        if (position >= tokens.Count)
        {
            return null;
        }

        var token = tokens[position++];
        if (token == "(")
        {
            var inner = ParseOr(tokens, ref position);
            if (inner is null || position >= tokens.Count || tokens[position] != ")")
            {
                return null;
            }

            position++;
            return inner;
        }

        return token == ")" || IsOperator(token, "AND") || IsOperator(token, "OR") ? null : new Leaf(token);
    }

    private sealed class Leaf(string permission) : PermissionQuery
    {
        public override bool IsSatisfiedBy(IReadOnlyCollection<string> granted) => granted.Contains(permission);
    }

    private sealed class And(PermissionQuery left, PermissionQuery right) : PermissionQuery
    {
        public override bool IsSatisfiedBy(IReadOnlyCollection<string> granted) => left.IsSatisfiedBy(granted) && right.IsSatisfiedBy(granted);
    }

    private sealed class Or(PermissionQuery left, PermissionQuery right) : PermissionQuery
    {
        public override bool IsSatisfiedBy(IReadOnlyCollection<string> granted) => left.IsSatisfiedBy(granted) || right.IsSatisfiedBy(granted);
    }
}
