// Marks the page as having JavaScript (html.js instead of html.no-js), so app.css shows the controls that need a
// script and hides the words for pages without one (.js-only, .no-js-only). The one place it is set: base.html loads
// it in <head> of every page, without defer, so the class is there before the first paint (a deferred script showed
// the no-JavaScript words for a moment), and in a file, since the Content-Security-Policy refuses inline scripts.
document.documentElement.classList.replace("no-js", "js");
