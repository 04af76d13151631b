/* MedLens content script, last file of the shield script registered for document_start (see
 * background.js, syncShieldScript): starts the controller at once, so classification begins as soon
 * as each image's address is known instead of at the page's load event. */
(() => {
  "use strict";
  void globalThis.MedLens.content.autoStart();
})();
